"""The login throttle as a person sees it in Chromium: the wait, in words, instead of a password check."""
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shot

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "A-long-passphrase-browser"


def test_a_paused_login_says_how_long_to_wait(page, live_server, django_user_model, settings):
    """GIVEN five wrong logins from this browser's address WHEN a sixth is tried, even with a right password
    THEN the page says to wait and for how long, and the person stays logged out."""
    settings.JITAD_LOGIN_CLIENT_DELAY_SECONDS = 60
    names = [django_user_model.objects.create_user(f"b{i}{uuid.uuid4().hex[:5]}", password=PASSWORD).username
             for i in range(6)]
    url = live_server.url.replace("127.0.0.1", "localhost")
    for name in names[:5]:
        page.goto(url + "/account/login/")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill("Sprayed-2026!")
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("#login-error")).to_have_text("The user name or password is not right.")
    page.get_by_label("User name").fill(names[5])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#login-error")).to_have_text(
        re.compile(r"^Too many failed logins from your address\. Try again in (5\d|60) seconds\.$"))
    expect(page).to_have_url(re.compile(r"/account/login/"))
    shot(page, "login-throttled")
