"""Steps the browser tests share."""
import re

import pyotp
from playwright.sync_api import expect

from tests.browser.conftest import shot


def login_and_enrol(page, portal, sam, password, name_prefix="", next_path="/") -> tuple[pyotp.TOTP, list[str]]:
    """Log in with AD credentials, enrol TOTP from the page's key; returns the TOTP and the backup codes."""
    page.goto(portal + next_path)
    expect(page).to_have_url(re.compile(r"/account/login/"))
    page.get_by_label("User name").fill(sam)
    page.get_by_label("Password").fill(password)
    shot(page, f"{name_prefix}01-login")
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/account/mfa/enrol/"))
    secret = page.locator("#totp-secret").get_attribute("data-secret")
    expect(page.locator(".qr svg")).to_be_visible()
    shot(page, f"{name_prefix}02-enrol-totp")
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(r"/account/mfa/backup-codes/"))
    expect(page.locator("#backup-codes li")).to_have_count(10)
    shot(page, f"{name_prefix}03-backup-codes")
    codes = [c.strip() for c in page.locator("#backup-codes li").all_inner_texts()]
    page.get_by_role("link", name=re.compile("saved them")).click()
    return totp, codes
