"""MFA in the portal: TOTP enrolment from the page, verification, backup codes, throttling,
the fresh-MFA step-up, and the pieces that must never leak (tokens, open redirects)."""
import re
import time

import pyotp
import pytest

from jitad.accounts.devices import AuthenticatorDevice, BackupCode, BackupCodeDevice
from jitad.accounts.mfa import FRESH_KEY
from jitad.accounts.models import ApiToken
from jitad.audit.models import AuditEvent
from tests.support.mfa import backup_codes, stale_age, totp_code, totp_device, verify_session

pytestmark = pytest.mark.django_db
PASSWORD = "A-long-passphrase-5"


@pytest.fixture
def person(django_user_model):
    import uuid

    return django_user_model.objects.create_user(f"m{uuid.uuid4().hex[:6]}", password=PASSWORD)


def _login(client, user, next_url="/eligible/"):
    response = client.post("/account/login/", {"username": user.username, "password": PASSWORD, "next": next_url})
    assert response.status_code == 302
    return response.url


def test_enrolment_from_the_page_then_backup_codes_once(client, person):
    """GIVEN a first login WHEN the person scans the secret the page shows and types a code
    THEN the device counts, the session is verified and fresh, and backup codes show once."""
    step = _login(client, person)
    assert step.startswith("/account/mfa/enrol/")
    page = client.get(step)
    html = page.content.decode()
    assert "<svg" in html  # the QR code is in the page, not fetched from elsewhere
    secret = re.search(r'data-secret="([A-Z2-7]+)"', html).group(1)
    assert client.get("/access/").url.startswith("/account/mfa/enrol/")  # nothing opens before that

    wrong = client.post(step, {"code": "123456"})
    assert wrong.status_code == 400
    assert not AuthenticatorDevice.objects.filter(user=person, confirmed=True).exists()
    time.sleep(1.1)  # django-otp throttles for a second after a wrong code

    done = client.post(step, {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302 and done.url.startswith("/account/mfa/backup-codes/")
    codes_page = client.get(done.url).content.decode()
    codes = re.findall(r"<li><code>([0-9a-f]+)</code></li>", codes_page)
    assert len(codes) == 10
    assert not re.findall(r"<li><code>", client.get("/account/mfa/backup-codes/").content.decode())  # once
    assert client.session.get(FRESH_KEY) is not None
    assert AuditEvent.objects.filter(action="mfa.enrolled", actor=person.username).exists()


def test_an_enrolled_person_cannot_enrol_another_device_with_a_password_only(client, person):
    totp_device(person)
    step = _login(client, person)
    assert step.startswith("/account/mfa/verify/")
    assert client.get("/account/mfa/enrol/").url.startswith("/account/mfa/verify/")
    assert client.post("/account/mfa/enrol/", {"code": "123456"}).url.startswith("/account/mfa/verify/")
    assert client.post("/account/mfa/backup-codes/").url.startswith("/account/mfa/verify/")
    assert AuthenticatorDevice.objects.filter(user=person).count() == 1


def test_verify_with_totp_then_throttled_then_backup_code_once(client, person):
    device = totp_device(person)
    [code] = backup_codes(person, 1)
    step = _login(client, person, next_url="/access/")
    assert client.post(step, {"otp": "000000"}).status_code == 400
    throttled = client.post(step, {"otp": totp_code(device)})  # right code, but within the lock-out
    assert throttled.status_code == 400 and b"Too many wrong codes" in throttled.content
    ok = client.post(step, {"otp": code})
    assert ok.status_code == 302 and ok.url == "/access/"
    client.logout()
    step = _login(client, person)
    assert client.post(step, {"otp": code}).status_code == 400  # a backup code works once
    assert not BackupCode.objects.filter(device__user=person).exists()


def test_next_never_leaves_the_site(client, person):
    [code] = backup_codes(person, 1)
    totp_device(person)
    response = client.post("/account/login/", {"username": person.username, "password": PASSWORD,
                                               "next": "https://evil.example/steal"})
    ok = client.post(response.url, {"otp": code})
    assert ok.status_code == 302 and ok.url == "/access/"


def test_step_up_reposts_the_original_form(client, person):
    """GIVEN a stale session WHEN it creates an API token THEN a 403 page asks for a code and
    carries the form; submitting it with a code completes the original action."""
    verify_session(client, person, age_seconds=stale_age())
    [good] = backup_codes(person, 1)
    first = client.post("/account/security/tokens/", {"name": "deploy", "days": "30"})
    assert first.status_code == 403
    html = first.content.decode()
    assert 'name="name" value="deploy"' in html and 'name="days" value="30"' in html
    assert not ApiToken.objects.filter(user=person).exists()
    wrong = client.post("/account/security/tokens/", {"name": "deploy", "days": "30", "otp": "99999999"})
    assert wrong.status_code == 403 and b"not right" in wrong.content
    done = client.post("/account/security/tokens/", {"name": "deploy", "days": "30", "otp": good})
    assert done.status_code == 302
    assert ApiToken.objects.filter(user=person, name="deploy").count() == 1
    # Now fresh: the next change needs no code.
    assert client.post("/account/security/tokens/", {"name": "second", "days": "7"}).status_code == 302


def test_api_token_is_shown_once_and_stored_only_as_a_digest(client, person):
    verify_session(client, person)
    client.post("/account/security/tokens/", {"name": "bot", "days": "7"})
    page = client.get("/account/security/").content.decode()
    raw = re.search(r'id="new-token">(jitad_[A-Za-z0-9_-]+)<', page).group(1)
    token = ApiToken.objects.get(user=person)
    assert token.digest == ApiToken.hash(raw) and raw not in (token.digest, token.prefix)
    assert raw not in client.get("/account/security/").content.decode()
    assert not AuditEvent.objects.filter(data__icontains=raw.split("_", 2)[2]).exists()
    client.post(f"/account/security/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_last_device_cannot_be_removed(client, person):
    device = verify_session(client, person)
    response = client.post("/account/security/devices/remove/", {"device": device.persistent_id})
    assert response.status_code == 302
    assert AuthenticatorDevice.objects.filter(pk=device.pk).exists()
    backup_codes(person, 2)
    client.post("/account/security/devices/remove/", {"device": device.persistent_id})
    assert not AuthenticatorDevice.objects.filter(pk=device.pk).exists()


def test_someone_elses_device_cannot_be_removed(client, person, django_user_model):
    other = django_user_model.objects.create_user("other-mfa", password=PASSWORD)
    theirs = totp_device(other)
    backup_codes(other, 1)
    verify_session(client, person)
    client.post("/account/security/devices/remove/", {"device": theirs.persistent_id})
    assert AuthenticatorDevice.objects.filter(pk=theirs.pk).exists()


def test_admin_otp_login_counts_as_fresh(client, django_user_model):
    """The admin's own OTP login form verifies a device; that verification is fresh too."""
    admin = django_user_model.objects.create_superuser("fresh-admin", password=PASSWORD)
    device = totp_device(admin)
    response = client.post("/admin/login/", {"username": "fresh-admin", "password": PASSWORD,
                                              "otp_device": device.persistent_id, "otp_token": totp_code(device)})
    assert response.status_code == 302
    assert client.post("/account/security/tokens/", {"name": "x", "days": "7"}).status_code == 302


def test_an_enrolment_secret_is_never_shown_to_a_second_session(client, person, django_user_model):
    """GIVEN someone with the password opens the enrol page first WHEN the real person enrols
    in their own session THEN they get a different secret, and the first one never verifies."""
    from django.test import Client

    attacker = Client()
    html = attacker.get(_login(attacker, person)).content.decode()
    stolen = re.search(r'data-secret="([A-Z2-7]+)"', html).group(1)

    step = _login(client, person)
    html = client.get(step).content.decode()
    mine = re.search(r'data-secret="([A-Z2-7]+)"', html).group(1)
    assert mine != stolen
    assert client.get(step).content.decode().count(mine) >= 1  # a reload keeps this session's secret
    assert client.post(step, {"code": pyotp.TOTP(mine).now()}).status_code == 302
    assert AuthenticatorDevice.objects.filter(user=person).count() == 1  # the other secret is gone

    later = Client()
    verify = _login(later, person)
    assert later.post(verify, {"otp": pyotp.TOTP(stolen).now()}).status_code == 400


def test_mfa_verification_gives_the_session_a_new_key(client, person):
    [code] = backup_codes(person, 1)
    totp_device(person)
    step = _login(client, person)
    before = client.session.session_key
    assert client.post(step, {"otp": code}).status_code == 302
    assert client.session.session_key != before


def test_a_backup_device_with_no_codes_left_does_not_count_as_a_device(client, person):
    device = verify_session(client, person)
    BackupCodeDevice.objects.create(user=person, name="spent", confirmed=True)
    client.post("/account/security/devices/remove/", {"device": device.persistent_id})
    assert AuthenticatorDevice.objects.filter(pk=device.pk).exists()


def test_new_ways_to_pass_mfa_alert_the_security_channel(client, person, settings):
    """Routine for a person with no privileged role: they wait for the security channel's digest."""
    from jitad.notifications.models import DigestEntry, Notification

    settings.JITAD_ALERT_DIGEST_MINUTES = 15
    verify_session(client, person)
    client.post("/account/security/tokens/", {"name": "bot", "days": "7"})
    client.post("/account/mfa/backup-codes/")
    waiting = list(DigestEntry.objects.filter(event="mfa.changed", person=person.username).values_list("kind", "subject"))
    assert {kind for kind, _ in waiting} == {"created an API token", "made a new set of backup codes"}
    assert any("API token 'bot'" in subject for _, subject in waiting)
    assert not Notification.objects.filter(event="mfa.changed").exists()


def test_new_ways_to_pass_mfa_of_staff_alert_at_once(client, person, settings):
    from jitad.notifications.models import DigestEntry, Notification

    settings.JITAD_ALERT_DIGEST_MINUTES = 15
    person.is_staff = True
    person.save()
    verify_session(client, person)
    client.post("/account/mfa/backup-codes/")
    (note,) = Notification.objects.filter(event="mfa.changed")
    assert "backup codes" in note.subject and "staff (admin site)" in note.body
    assert not DigestEntry.objects.exists()


def test_too_many_wrong_passwords_pause_logins_for_that_account(client, person):
    """GIVEN five wrong passwords, typed as different spellings of the same account WHEN the
    right password comes next THEN it is refused too, and says why."""
    from jitad.accounts.throttle import login_key

    assert {login_key(n) for n in ("Alice", "JITAD\\alice", "alice@jitad.test", " ALICE ")} == {"alice"}
    for name in (person.username, person.username.upper(), person.username.title(), f" {person.username} ", person.username):
        assert client.post("/account/login/", {"username": name, "password": "wrong-password-1"}).status_code == 401
    refused = client.post("/account/login/", {"username": person.username, "password": PASSWORD})
    assert refused.status_code == 429 and b"Too many wrong passwords for this account. Try again in" in refused.content
    assert 0 < int(refused["Retry-After"]) <= 900
    assert "_auth_user_id" not in client.session


def test_pages_with_personal_data_are_never_cached(client, person):
    verify_session(client, person)
    for url in ("/access/", "/eligible/", "/account/security/"):
        assert "no-store" in client.get(url)["Cache-Control"], url
    verify_session(client, person, age_seconds=stale_age())
    step_up = client.post("/account/security/tokens/", {"name": "x", "days": "7"})
    assert step_up.status_code == 403 and "no-store" in step_up["Cache-Control"]
