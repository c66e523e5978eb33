"""The portal on a phone: a real Chromium at 390 x 844, against a real DC and a real worker.

GIVEN an AD user in an eligible group and an auto-approved target WHEN they log in, enrol
TOTP, request the target and watch it go active, on a 390 px wide screen THEN no page is
wider than the screen, and "Request access", "Ask for more time" and "Release now" lie
inside it and can be clicked (and releasing works).
"""
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import fresh_page, shot
from tests.browser.flows import login_and_enrol

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH, HEIGHT = 390, 844


@pytest.fixture
def phone(browser, request):
    yield from fresh_page(browser, request, viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=3,
                          is_mobile=True, has_touch=True)


def fits(pg, name: str) -> None:
    """Nothing on the page is wider than the screen (no sideways scrolling)."""
    width = pg.evaluate("document.documentElement.scrollWidth")
    shot(pg, f"phone-{name}")
    assert width <= WIDTH, f"{name} is {width} px wide on a {WIDTH} px screen"


def reachable(locator) -> None:
    """The control is on screen horizontally (after scrolling to it) and nothing covers it."""
    expect(locator).to_be_visible()
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, box
    locator.click(trial=True)  # actionable: visible, enabled, stable, and receives the pointer


def test_portal_fits_a_phone(phone, portal, ad_person, make_target):
    target = make_target(max_minutes=240)
    sam, password = ad_person("admins", prefix="ph")
    login_and_enrol(phone, portal, sam, password, name_prefix="phone-")

    phone.goto(portal + "/eligible/")
    fits(phone, "eligible")
    row = phone.locator("tr", has_text=target.name)
    link = row.get_by_role("link", name=re.compile("Request access"))
    reachable(link)
    link.click()

    expect(phone).to_have_url(re.compile(r"/request/new/"))
    fits(phone, "request-form")
    phone.get_by_label(re.compile("Duration", re.I)).fill("1h30m")
    submit = phone.get_by_role("button", name="Request access")
    reachable(submit)
    submit.click()

    expect(phone).to_have_url(re.compile(r"/access/"))
    active = phone.locator("[data-grant-id][data-state='active']", has_text=target.name)
    expect(active).to_have_count(1, timeout=30_000)
    fits(phone, "my-access-active")
    reachable(active.get_by_role("button", name=re.compile("Ask for more time")))
    release = active.get_by_role("button", name=re.compile("Release now"))
    reachable(release)

    active.get_by_role("button", name=re.compile("Ask for more time")).click()
    expect(phone).to_have_url(re.compile(r"/extend/"))
    fits(phone, "extend-form")
    phone.go_back()

    for path, name in (("/account/security/", "security"), ("/breakglass/", "breakglass")):
        phone.goto(portal + path)
        fits(phone, name)

    phone.goto(portal + "/access/")
    release = phone.locator("[data-grant-id][data-state='active']", has_text=target.name).get_by_role(
        "button", name=re.compile("Release now"))
    reachable(release)
    release.click()
    expect(phone.locator("[data-grant-id][data-state='revoked']", has_text=target.name).first).to_be_visible(
        timeout=30_000)
    fits(phone, "my-access-released")
