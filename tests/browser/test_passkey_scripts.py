"""The passkey step's scripts run in order: the translation catalog before the passkey module.

django-otp-webauthn's own template loads its catalog ``async``, so under load its module could
run first: the "Use my passkey" button appeared, and a click died on an undefined ``gettext``,
leaving the person on the verify page with no message (seen as a rare failure of the CSP
journey). jitad's templates load the catalog ``defer``, before the module. This test holds the
catalog's response back: the button must not appear until it arrives, and then the passkey
works.
"""
import re

import pytest
from playwright.sync_api import expect

from tests.browser.flows import login_and_enrol

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_passkey_button_waits_for_the_catalog_and_then_verifies(browser, portal, ad_person):
    """GIVEN a person with a passkey, and a slow translation catalog (held back by the test)
    WHEN they reach the MFA step THEN no passkey button is offered while the catalog is missing;
    WHEN it arrives THEN the button appears and the passkey verifies them, landing where they were going."""
    sam, password = ad_person("admins", prefix="pks")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})

    login_and_enrol(page, portal, sam, password, name_prefix="pks-")
    page.goto(portal + "/account/security/")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("tr", has_text="Passkey")).to_have_count(1)
    page.get_by_role("button", name="Log out").click()

    held, holding = [], [True]

    def hold(route):  # answered below, when the test says so
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r".*/jsi18n/.*"), hold)
    page.get_by_label("User name").fill(sam)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click(no_wait_after=True)
    expect(page).to_have_url(re.compile(r"/account/mfa/verify/"))
    for _ in range(50):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the verify page never asked for the translation catalog"
    page.wait_for_timeout(1500)  # ample time for a module that did not wait to run and show its button
    assert page.get_by_role("button", name="Use my passkey").count() == 0

    holding[0] = False
    for route in held:
        route.continue_()
    page.get_by_role("button", name="Use my passkey").click()
    expect(page).to_have_url(re.compile(r"/access/"))
    assert errors == []
    context.close()
