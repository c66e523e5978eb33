"""Onboarding with enrolment codes in a real browser, against the session's Samba DC.

GIVEN JITAD_ENROLMENT_CODE_REQUIRED and an AD account jitad has never seen WHEN an operator
pre-provisions it with ``manage.py jitad_provision --enrolment-code`` THEN the portal user
exists with the person's AD groups before any login; someone with the password alone meets
the code page, a wrong code is refused and counted; the person's code opens the enrolment
page with its QR code, and the authenticator they confirm is their first device. A second
browser with the same password and the same code gets nothing.
"""
import json
import re
import uuid
from io import StringIO

import pyotp
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from jitad import directory
from jitad.accounts.devices import AuthenticatorDevice
from jitad.accounts.models import EnrolmentCode
from tests.browser.conftest import fresh_page, shot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def newcomer(jit_ou):
    sam = f"n{uuid.uuid4().hex[:7]}"
    password = "Pw-" + uuid.uuid4().hex
    with directory.connect() as d:
        dn = d.ensure_user(sam, jit_ou, password=password, display_name=f"New {sam}")
        d.add_member(d.ensure_group("admins", jit_ou), dn)
    return sam, password


def _log_in(page, portal, sam, password):
    page.goto(portal + "/")
    page.get_by_label("User name").fill(sam)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()


def test_provisioned_person_enrols_with_the_service_desks_code(page, portal, newcomer, settings, browser, request):
    settings.JITAD_ENROLMENT_CODE_REQUIRED = True
    sam, password = newcomer
    out = StringIO()
    call_command("jitad_provision", sam, "--enrolment-code", "--by", "desk:sam", "--format", "json", stdout=out)
    (row,) = json.loads(out.getvalue())["people"]
    assert row["result"] == "created" and row["user"] == sam
    user = get_user_model().objects.get(username=sam)
    assert user.groups.filter(name="admins").exists()  # AD groups mirrored before any login
    assert hasattr(user, "directory_account")

    _log_in(page, portal, sam, password)
    expect(page).to_have_url(re.compile(r"/account/mfa/enrol/code/"))
    expect(page.locator(".qr svg")).to_have_count(0)
    page.get_by_label("Enrolment code").fill("0000-0000-0000-000" + ("1" if not row["enrolment_code"].endswith("1") else "2"))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    assert EnrolmentCode.objects.get(user=user).failed_attempts == 1
    shot(page, "enrolment-code-wrong")

    page.get_by_label("Enrolment code").fill(row["enrolment_code"].lower())
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/account/mfa/enrol/(\?|$)"))
    secret = page.locator("#totp-secret").get_attribute("data-secret")
    expect(page.locator(".qr svg")).to_be_visible()

    # Someone else with the password and the code, in another browser, while the person enrols.
    thief = next(fresh_page(browser, request, viewport={"width": 1280, "height": 860}))
    _log_in(thief, portal, sam, password)
    expect(thief).to_have_url(re.compile(r"/account/mfa/enrol/code/"))
    thief.get_by_label("Enrolment code").fill(row["enrolment_code"])
    thief.get_by_role("button", name="Continue").click()
    expect(thief.get_by_role("alert")).to_contain_text("no valid enrolment code")
    thief.context.close()

    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(r"/account/mfa/backup-codes/"))
    expect(page.locator("#backup-codes li")).to_have_count(10)
    shot(page, "enrolment-code-done")
    assert AuthenticatorDevice.objects.filter(user=user, confirmed=True).count() == 1
