"""The requester's whole journey in a real browser against a real DC and a real worker.

GIVEN an AD user in an eligible group and an auto-approved target WHEN they log in with
their AD password, enrol TOTP from the QR page, request the target, and release it
THEN the portal shows it active (live, without a reload) while AD has the membership, and
shows it ended once AD no longer has it.
"""
import re
import uuid

import pytest
from playwright.sync_api import expect

from jitad import directory
from tests.browser.conftest import shot
from tests.browser.flows import login_and_enrol
from tests.elevation.helpers import ad_is_member, ad_user_dn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ad_requester(jit_ou):
    """An AD account (not yet known to jitad) in the AD group 'admins'."""
    sam = f"b{uuid.uuid4().hex[:7]}"
    password = "Pw-" + uuid.uuid4().hex
    with directory.connect() as d:
        dn = d.ensure_user(sam, jit_ou, password=password, display_name=f"Browser {sam}")
        group = d.ensure_group("admins", jit_ou)
        d.add_member(group, dn)
    return sam, password


def test_request_watch_active_release(page, portal, ad_requester, make_target, ldap_admin, samba_dc):
    sam, password = ad_requester
    target = make_target()
    login_and_enrol(page, portal, sam, password)

    page.get_by_role("link", name="Request access").first.click()
    expect(page).to_have_url(re.compile(r"/eligible/"))
    page.get_by_label(re.compile("Search", re.I)).fill(target.name)
    row = page.locator("tr", has_text=target.name)
    expect(row).to_have_count(1)
    shot(page, "04-eligible")
    row.get_by_role("link", name=re.compile("Request", re.I)).click()

    expect(page).to_have_url(re.compile(r"/request/new/"))
    page.get_by_label(re.compile("Duration", re.I)).fill("30")
    page.get_by_label(re.compile("Justification", re.I)).fill("Patch Tuesday on the browser test box")
    shot(page, "05-request-form")
    page.get_by_role("button", name="Request access").click()

    expect(page).to_have_url(re.compile(r"/access/"))
    active = page.locator("[data-grant-id][data-state='active']", has_text=target.name)
    expect(active).to_have_count(1, timeout=30_000)  # htmx polling turns it active without a reload
    expect(active.locator("[data-expires]")).to_contain_text(re.compile(r"\d+m"))
    shot(page, "06-my-access-active")
    user_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, sam)
    assert ad_is_member(ldap_admin, target.group_dn, user_dn)

    active.get_by_role("button", name="Release now").click()
    expect(page.locator("[data-grant-id][data-state='active']", has_text=target.name)).to_have_count(0, timeout=30_000)
    expect(page.locator("[data-grant-id][data-state='revoked']", has_text=target.name).first).to_be_visible(timeout=30_000)
    shot(page, "07-my-access-released")
    assert not ad_is_member(ldap_admin, target.group_dn, user_dn)


def test_passkey_as_second_factor(page, portal, ad_requester):
    """GIVEN an enrolled user WHEN they add a passkey (a virtual authenticator in Chromium)
    and log in again THEN the passkey alone completes the second step."""
    sam, password = ad_requester
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
    login_and_enrol(page, portal, sam, password, name_prefix="passkey-")

    page.goto(portal + "/account/security/")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("tr", has_text="Passkey")).to_have_count(1, timeout=15_000)
    shot(page, "08-security-with-passkey")

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("User name").fill(sam)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/account/mfa/verify/"))
    shot(page, "09-verify-choices")
    page.get_by_role("button", name="Use my passkey").click()
    expect(page).to_have_url(re.compile(r"/access/"), timeout=15_000)
