"""Enrolment codes: with JITAD_ENROLMENT_CODE_REQUIRED, a password alone no longer enrols the first MFA device.

Through the whole portal stack (middleware, views, services, the vault) with Django's client;
the browser walk with a real DC is tests/browser/test_enrolment_code.py.
"""
import json
import re
import uuid
from io import StringIO

import pyotp
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from jitad.accounts.devices import AuthenticatorDevice
from jitad.accounts.enrolment import enrolment_code_issue
from jitad.accounts.models import EnrolmentCode
from jitad.audit.models import AuditEvent
from jitad.notifications.models import Notification

pytestmark = pytest.mark.django_db
PASSWORD = "A-long-passphrase-5"


@pytest.fixture(autouse=True)
def required(settings):
    settings.JITAD_ENROLMENT_CODE_REQUIRED = True
    settings.JITAD_ENROLMENT_CODE_MAX_ATTEMPTS = 3


@pytest.fixture
def person(django_user_model):
    return django_user_model.objects.create_user(f"e{uuid.uuid4().hex[:6]}", password=PASSWORD)


def _login(client, user) -> str:
    response = client.post("/account/login/", {"username": user.username, "password": PASSWORD, "next": "/eligible/"})
    assert response.status_code == 302
    return response.url


def _enrol_page_secret(client) -> str:
    page = client.get("/account/mfa/enrol/")
    assert page.status_code == 200, page
    return re.search(r'data-secret="([A-Z2-7]+)"', page.content.decode()).group(1)


def test_a_password_alone_sees_no_key_and_enrols_nothing(client, person):
    """GIVEN the setting on and no code presented WHEN someone with the person's password opens the
    enrolment page or posts a TOTP code to it THEN they are sent to the code page, no key is made
    (nothing to scan), and no device is confirmed."""
    step = _login(client, person)
    assert step.startswith("/account/mfa/enrol/")
    page = client.get(step)
    assert page.status_code == 302 and page.url.startswith("/account/mfa/enrol/code/")
    assert client.get("/eligible/").url.startswith("/account/mfa/enrol/")  # nothing else opens either
    assert client.post("/account/mfa/enrol/", {"code": "123456"}).url.startswith("/account/mfa/enrol/code/")
    assert not AuthenticatorDevice.objects.filter(user=person).exists()
    code_page = client.get(page.url)
    assert code_page.status_code == 200 and b"Enrolment code" in code_page.content


def test_the_issued_code_opens_enrolment_once_for_this_session(client, person, django_user_model):
    """GIVEN a code issued by an operator WHEN the person types it (any case, with or without dashes)
    THEN this session may enrol, the first device records the code; a second session with the
    same password and the same code gets nothing (single use), and issue and use are audited."""
    _code, raw = enrolment_code_issue(user=person, actor="desk:sam")
    _login(client, person)
    typed = raw.replace("-", " ").lower()
    before = client.cookies["sessionid"].value
    taken = client.post("/account/mfa/enrol/code/", {"enrolment_code": typed, "next": "/eligible/"})
    assert taken.status_code == 302 and taken.url.startswith("/account/mfa/enrol/")
    assert client.cookies["sessionid"].value != before  # a cookie taken before the code opens nothing

    from django.test import Client

    thief = Client()
    _login(thief, person)
    again = thief.post("/account/mfa/enrol/code/", {"enrolment_code": raw})
    assert again.status_code == 400 and b"no valid enrolment code" in again.content
    assert thief.get("/account/mfa/enrol/").url.startswith("/account/mfa/enrol/code/")

    secret = _enrol_page_secret(client)
    done = client.post("/account/mfa/enrol/", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302 and done.url.startswith("/account/mfa/backup-codes/")
    device = AuthenticatorDevice.objects.get(user=person, confirmed=True)
    actions = list(AuditEvent.objects.filter(object_type="user", object_id=str(person.pk),
                                             action__startswith="enrolment_code.").values_list("action", "actor"))
    assert ("enrolment_code.issued", "desk:sam") in actions and ("enrolment_code.used", person.username) in actions
    enrolled = AuditEvent.objects.get(action="mfa.enrolled", object_id=device.persistent_id)
    assert enrolled.data["enrolment_code"] == _code.pk and enrolled.data["first"] is True


def test_wrong_codes_are_counted_and_the_code_dies_alerted(client, person):
    """GIVEN a live code WHEN three wrong codes are typed (the limit here) THEN the code is void,
    the right code no longer works, and the security channel is told at once."""
    _code, raw = enrolment_code_issue(user=person, actor="desk:sam")
    _login(client, person)
    wrong = "0000-0000-0000-0000" if raw != "0000-0000-0000-0000" else "1111-1111-1111-1111"
    first = client.post("/account/mfa/enrol/code/", {"enrolment_code": wrong})
    assert first.status_code == 400 and b"2 more tries" in first.content
    assert client.post("/account/mfa/enrol/code/", {"enrolment_code": "short"}).status_code == 400  # not counted
    client.post("/account/mfa/enrol/code/", {"enrolment_code": wrong})
    last = client.post("/account/mfa/enrol/code/", {"enrolment_code": wrong})
    assert b"no longer works" in last.content
    code = EnrolmentCode.objects.get(pk=_code.pk)
    assert code.failed_attempts == 3 and code.void_reason == "attempts"
    assert client.post("/account/mfa/enrol/code/", {"enrolment_code": raw}).status_code == 400
    assert Notification.objects.filter(event="enrolment_code.voided", object_id=str(person.pk)).exists()


def test_expired_replaced_and_revoked_codes_do_not_work(client, person):
    old, old_raw = enrolment_code_issue(user=person, actor="desk:sam")
    new, new_raw = enrolment_code_issue(user=person, actor="desk:sam")
    assert EnrolmentCode.objects.get(pk=old.pk).void_reason == "replaced"
    _login(client, person)
    assert client.post("/account/mfa/enrol/code/", {"enrolment_code": old_raw}).status_code == 400
    EnrolmentCode.objects.filter(pk=new.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert client.post("/account/mfa/enrol/code/", {"enrolment_code": new_raw}).status_code == 400
    _third, third_raw = enrolment_code_issue(user=person, actor="desk:sam")
    out = StringIO()
    call_command("jitad_enrolment_code", "revoke", person.username, "--by", "desk:kim", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["revoked"] == 1
    assert client.post("/account/mfa/enrol/code/", {"enrolment_code": third_raw}).status_code == 400


def test_the_database_holds_nothing_to_type_and_a_planted_row_does_not_open(client, person, django_user_model):
    """GIVEN an issued code WHEN every column of the codes table is read with SQL THEN neither the code
    nor its plain SHA-256 is there; AND a row someone with write access (and no vault key) copies
    from their own code onto the person, or writes with a digest of their choosing, opens nothing."""
    import hashlib

    code, raw = enrolment_code_issue(user=person, actor="desk:sam")
    bare = raw.replace("-", "")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {EnrolmentCode._meta.db_table}")
        dump = json.dumps(cursor.fetchall(), default=str)
    for form in (raw, bare, bare.lower(), hashlib.sha256(bare.encode()).hexdigest()):
        assert form not in dump

    other = django_user_model.objects.create_user(f"o{uuid.uuid4().hex[:6]}", password=PASSWORD)
    own, own_raw = enrolment_code_issue(user=other, actor="desk:sam")
    EnrolmentCode.objects.filter(pk=code.pk).update(sealed_digest=own.sealed_digest)  # moved onto the person's row
    _login(client, person)
    refused = client.post("/account/mfa/enrol/code/", {"enrolment_code": own_raw})
    assert refused.status_code == 400 and b"cannot be checked" in refused.content
    assert not EnrolmentCode.objects.filter(user=person, used_at__isnull=False).exists()


def test_the_command_issues_once_and_never_shows_a_code_again(person):
    out = StringIO()
    call_command("jitad_enrolment_code", "issue", person.username, "--hours", "4", "--by", "desk:sam",
                 "--format", "json", stdout=out)
    issued = json.loads(out.getvalue())
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", issued["code"])
    status = StringIO()
    call_command("jitad_enrolment_code", "status", person.username, "--format", "json", stdout=status)
    (row,) = json.loads(status.getvalue())["codes"]
    assert row["state"] == "live" and row["issued_by"] == "desk:sam"
    assert issued["code"] not in status.getvalue() and issued["code"].replace("-", "") not in status.getvalue()


def test_without_the_setting_the_first_login_enrols_as_before(client, person, settings):
    settings.JITAD_ENROLMENT_CODE_REQUIRED = False
    _login(client, person)
    secret = _enrol_page_secret(client)
    assert client.post("/account/mfa/enrol/", {"code": pyotp.TOTP(secret).now()}).status_code == 302
    assert AuthenticatorDevice.objects.filter(user=person, confirmed=True).exists()


def test_the_admin_issues_codes_shown_in_its_answer_only(client, person, django_user_model, verified_client):
    """GIVEN a verified admin WHEN they run the Users list's action on a person THEN the answer shows the
    code (and is kept by no cache), the person's code works, and the issue is audited as the admin's;
    a session without MFA gets no code."""
    admin_user = django_user_model.objects.create_superuser(f"adm{uuid.uuid4().hex[:5]}", password=PASSWORD)
    data = {"action": "issue_enrolment_codes", "_selected_action": [person.pk]}
    client.force_login(admin_user, backend="jitad.accounts.backends.ThrottledModelBackend")
    assert client.post("/admin/auth/user/", data).status_code == 302  # no MFA yet: the OTP admin sends it away
    assert not EnrolmentCode.objects.filter(user=person).exists()

    answer = verified_client(admin_user).post("/admin/auth/user/", data)
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    raw = re.search(r"<code>([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})</code>", answer.content.decode()).group(1)
    assert AuditEvent.objects.get(action="enrolment_code.issued", object_id=str(person.pk)).actor == admin_user.username

    from django.test import Client

    newcomer = Client()
    _login(newcomer, person)
    assert newcomer.post("/account/mfa/enrol/code/", {"enrolment_code": raw}).status_code == 302


def test_key_rotation_reseals_codes_and_they_still_work(client, person, settings):
    """GIVEN a code sealed under an old vault key WHEN a new key goes first and `jitad_rekey` runs THEN
    `--check` named the codes before, passes after, and the code works with the old key gone."""
    from django.core.management.base import CommandError

    from jitad import vault

    old, new = vault.key_generate(), vault.key_generate()
    settings.JITAD_VAULT_KEYS = [old]
    _code, raw = enrolment_code_issue(user=person, actor="desk:sam")
    settings.JITAD_VAULT_KEYS = [new, old]
    with pytest.raises(CommandError, match="MFA enrolment codes: 1 value"):
        call_command("jitad_rekey", "--check")
    call_command("jitad_rekey")
    settings.JITAD_VAULT_KEYS = [new]
    _login(client, person)
    assert client.post("/account/mfa/enrol/code/", {"enrolment_code": raw}).status_code == 302
