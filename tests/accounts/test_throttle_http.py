"""Login throttling over HTTP (the whole middleware stack, the portal and the admin login) against the Samba DC.

Each client address is set as the web server sees it (REMOTE_ADDR), with X-Forwarded-For
where a proxy would add it. Waits are real (a second or two); nothing asserts on speed.
"""
import uuid

import pytest
from django.test import Client
from ldap3 import BASE

from jitad import directory
from jitad.accounts.devices import BackupCodeDevice
from jitad.accounts.models import LoginFailure, LoginSource
from jitad.audit.models import AuditEvent
from tests.support.mfa import backup_codes

pytestmark = pytest.mark.django_db
SPRAYED = "Winter2026!"


@pytest.fixture
def ad_account(jit_ou):
    """``ad_account(*groups)`` -> (sAMAccountName, password, dn): a real AD account in the given AD groups."""

    def make(*groups):
        sam = f"t{uuid.uuid4().hex[:8]}"
        password = "Pw-" + uuid.uuid4().hex
        with directory.connect() as d:
            dn = d.ensure_user(sam, jit_ou, password=password)
            for name in groups:
                d.add_member(d.ensure_group(name, jit_ou), dn)
        return sam, password, dn

    return make


def post_login(addr: str, username: str, password: str, xff: str | None = None, client: Client | None = None):
    extra = {"REMOTE_ADDR": addr}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    client = client or Client()
    return client.post("/account/login/", {"username": username, "password": password, "next": "/access/"}, **extra)


def elapse(seconds: float) -> None:
    """Let ``seconds`` pass for the recorded failures (moved back in the database, as time would)."""
    from datetime import timedelta

    for row in LoginFailure.objects.all():
        LoginFailure.objects.filter(pk=row.pk).update(at=row.at - timedelta(seconds=seconds))


def checked() -> int:
    """Passwords actually checked and found wrong (each is audited; a paused attempt is not checked)."""
    return AuditEvent.objects.filter(action="account.login_failed").count()


def test_spraying_thirty_names_from_one_address_is_slowed(ad_account, settings):
    """GIVEN 30 names (3 real AD accounts among them) WHEN one address tries each with one password THEN five
    passwords are checked, the other 25 attempts are refused unchecked with 429, a Retry-After and the wait in
    words (a real account's right password too); once the wait is over one more is checked and the wait doubles."""
    settings.JITAD_LOGIN_CLIENT_DELAY_SECONDS = 60  # longer than the spray takes, however slow the machine
    real = [ad_account() for _ in range(3)]
    names = [sam for sam, _pw, _dn in real] + [f"user{i:02d}" for i in range(27)]
    answers = [post_login("203.0.113.7", name, SPRAYED) for name in names]
    assert [r.status_code for r in answers[:5]] == [401] * 5
    assert all(b"The user name or password is not right." in r.content for r in answers[:5])
    assert {r.status_code for r in answers[5:]} == {429}
    wait = int(answers[5]["Retry-After"])
    assert 50 <= wait <= 60
    assert f"Too many failed logins from your address. Try again in {wait} seconds.".encode() in answers[5].content
    assert checked() == 5
    sam, password, _dn = real[0]
    right = post_login("203.0.113.7", sam, password)
    assert right.status_code == 429 and "_auth_user_id" not in right.client.session
    elapse(61)
    assert post_login("203.0.113.7", "user99", SPRAYED).status_code == 401
    again = post_login("203.0.113.7", "user98", SPRAYED)
    assert again.status_code == 429 and 110 <= int(again["Retry-After"]) <= 120
    assert checked() == 6
    # Another address is not slowed: the real account logs in there.
    ok = post_login("198.51.100.20", sam, password)
    assert ok.status_code == 302 and "/account/mfa/" in ok.url
    paused = AuditEvent.objects.filter(action="account.login_paused", object_type="login_client", object_id="203.0.113.7")
    assert paused.count() == 1  # one audit per pause, not one per refused attempt


def lockout_after(samba_dc, sam: str, threshold: int) -> None:
    """An AD lockout policy for ``sam`` alone (a PSO): locked after ``threshold`` wrong passwords."""
    import subprocess

    pso = f"pso-{uuid.uuid4().hex[:6]}"
    conf = ["-s", str(samba_dc.smb_conf)]
    subprocess.run(["samba-tool", "domain", "passwordsettings", "pso", "create", pso, "2",
                    f"--account-lockout-threshold={threshold}", "--account-lockout-duration=30",
                    "--reset-account-lockout-after=30", *conf], check=True, capture_output=True)
    subprocess.run(["samba-tool", "domain", "passwordsettings", "pso", "apply", pso, sam, *conf], check=True,
                   capture_output=True)


def _full_login(addr: str, sam: str, password: str, code: str) -> Client:
    """Password then MFA at the portal, from ``addr``; returns the logged-in client."""
    c = Client(REMOTE_ADDR=addr)
    r = c.post("/account/login/", {"username": sam, "password": password, "next": "/access/"})
    assert r.status_code == 302 and "/account/mfa/" in r.url, (r.status_code, r.content[:300])
    r = c.post("/account/mfa/verify/", {"otp": code, "next": "/access/"})
    assert r.status_code == 302 and r.url == "/access/", r.status_code
    return c


def test_an_attacker_spraying_an_approvers_name_cannot_lock_them_out(ad_account, make_target, ldap_admin,
                                                                    django_user_model, samba_dc):
    """GIVEN an approver who logs in (password and code) from 192.0.2.10 WHEN an attacker tries their name with
    wrong passwords from other addresses THEN the attacker's attempts pause after five (even with the right
    password), the approver still logs in to the portal and the admin from their address, and AD never locks
    the account, which AD would lock at the 10th wrong password."""
    group = f"Approvers-{uuid.uuid4().hex[:6]}"
    sam, password, dn = ad_account(group)
    lockout_after(samba_dc, sam, 10)
    make_target(approver_groups=(group,))
    first = post_login("192.0.2.10", sam, password)
    assert first.status_code == 302  # mirrored from AD; sent to enrol
    approver = django_user_model.objects.get(username=sam)
    codes = backup_codes(approver, 4)
    _full_login("192.0.2.10", sam, password, codes[0])
    assert LoginSource.objects.filter(account=sam, client="192.0.2.10").exists()

    attempts = [post_login(f"198.51.100.{i}", sam, f"guess-{i}") for i in range(1, 13)]
    assert [r.status_code for r in attempts] == [401] * 5 + [429] * 7
    assert b"Too many wrong passwords for this account. Try again in" in attempts[-1].content
    assert post_login("198.51.100.77", sam, password).status_code == 429  # strangers are paused, unchecked
    assert LoginFailure.objects.filter(account=sam).count() == 5

    device = BackupCodeDevice.objects.get(user=approver)
    stranger = Client(REMOTE_ADDR="198.51.100.78").post(
        "/admin/login/", {"username": sam, "password": password, "otp_device": device.persistent_id,
                          "otp_token": codes[3]})
    assert stranger.status_code == 200 and b"Too many wrong passwords for this account. Try again in" in stranger.content

    _full_login("192.0.2.10", sam, password, codes[1])
    admin = Client(REMOTE_ADDR="192.0.2.10")
    r = admin.post("/admin/login/", {"username": sam, "password": password, "otp_device": device.persistent_id,
                                     "otp_token": codes[2], "next": "/admin/"})
    assert r.status_code == 302, r.content[:500]
    assert admin.get("/admin/").status_code == 200
    assert backup_codes_left(approver) == 1  # the stranger's code was never checked

    conn = ldap_admin()
    conn.search(dn, "(objectClass=user)", BASE, attributes=["badPwdCount", "lockoutTime"])
    entry = conn.entries[0].entry_attributes_as_dict
    conn.unbind()
    assert int((entry.get("badPwdCount") or [0])[0]) <= 5
    assert str((entry.get("lockoutTime") or ["0"])[0]) in ("0", "1601-01-01 00:00:00+00:00")
    assert directory.authenticate_user(sam, password)  # not locked in AD
    assert audit_paused(sam) == 1


def test_every_way_of_typing_one_account_counts_together_so_ad_never_locks_it(ad_account, ldap_admin, samba_dc):
    """GIVEN an AD account whose UPN does not start with its sAMAccountName, which AD locks at the 10th wrong
    password WHEN strangers (a new address each time) try wrong passwords alternating between the
    sAMAccountName, DOMAIN\\name, the name in upper case and the UPN THEN all of them count against the one
    account: five binds fail, the rest are refused unchecked, AD's bad-password count stays at five and the
    account is not locked (counted per name as typed, the UPN would have had five binds of its own: ten)."""
    from ldap3 import MODIFY_REPLACE

    sam, password, dn = ad_account()
    upn = f"first.last-{sam}@jitad.test"
    conn = ldap_admin()
    assert conn.modify(dn, {"userPrincipalName": [(MODIFY_REPLACE, [upn])]}), conn.result
    conn.unbind()
    lockout_after(samba_dc, sam, 10)
    ways = [sam, f"JITAD\\{sam}", sam.upper(), upn]
    attempts = [post_login(f"198.51.100.{i}", ways[i % 4], f"guess-{i}") for i in range(1, 21)]
    assert [r.status_code for r in attempts] == [401] * 5 + [429] * 15
    assert b"Too many wrong passwords for this account. Try again in" in attempts[-1].content
    assert set(LoginFailure.objects.values_list("account", flat=True)) == {sam}
    assert post_login("198.51.100.99", upn, password).status_code == 429  # the UPN is paused with the account

    conn = ldap_admin()
    conn.search(dn, "(objectClass=user)", BASE, attributes=["badPwdCount", "lockoutTime"])
    entry = conn.entries[0].entry_attributes_as_dict
    conn.unbind()
    assert int((entry.get("badPwdCount") or [0])[0]) == 5
    assert str((entry.get("lockoutTime") or ["0"])[0]) in ("0", "1601-01-01 00:00:00+00:00")
    assert directory.authenticate_user(upn, password)  # not locked in AD


def test_a_login_by_upn_is_remembered_for_the_account(ad_account, ldap_admin, django_user_model):
    """GIVEN a person who logs in (password and code) with their UPN from 192.0.2.20 THEN that address is theirs
    under their sAMAccountName, the key every other way of typing their name is counted by."""
    from ldap3 import MODIFY_REPLACE

    sam, password, dn = ad_account()
    upn = f"first.last-{sam}@jitad.test"
    conn = ldap_admin()
    assert conn.modify(dn, {"userPrincipalName": [(MODIFY_REPLACE, [upn])]}), conn.result
    conn.unbind()
    assert post_login("192.0.2.20", upn, password).status_code == 302  # mirrored from AD; sent to enrol
    person = django_user_model.objects.get(username=sam)
    _full_login("192.0.2.20", upn, password, backup_codes(person, 1)[0])
    assert set(LoginSource.objects.filter(client="192.0.2.20").values_list("account", flat=True)) == {sam}


def backup_codes_left(user) -> int:
    from jitad.accounts.devices import BackupCode

    return BackupCode.objects.filter(device__user=user).count()


def audit_paused(key: str) -> int:
    return AuditEvent.objects.filter(action="account.login_paused", object_type="login_account", object_id=key).count()


def test_forwarded_for_is_ignored_unless_a_trusted_proxy_sent_it(settings):
    """GIVEN spraying from one address that sets a new X-Forwarded-For each time WHEN that address is not a
    trusted proxy THEN the header changes nothing: it is slowed after five. GIVEN the address is a trusted proxy
    THEN each forwarded client is counted on its own, and a client cannot escape by prepending addresses."""
    settings.JITAD_LOGIN_CLIENT_DELAY_SECONDS = 60  # no pause may run out during the test, however slow the machine
    settings.JITAD_TRUSTED_PROXIES = []
    codes = [post_login("203.0.113.50", f"user{i}", SPRAYED, xff=f"198.51.100.{i}").status_code for i in range(8)]
    assert codes == [401] * 5 + [429] * 3
    assert set(LoginFailure.objects.values_list("client", flat=True)) == {"203.0.113.50"}

    settings.JITAD_TRUSTED_PROXIES = ["203.0.113.60", "10.0.0.0/24"]
    codes = [post_login("203.0.113.60", f"user{i}", SPRAYED, xff="192.0.2.33").status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    assert post_login("203.0.113.60", "user9", SPRAYED, xff="192.0.2.34").status_code == 401
    assert post_login("203.0.113.60", "user9", SPRAYED, xff="192.0.2.34, 192.0.2.33").status_code == 429
    assert post_login("203.0.113.60", "user9", SPRAYED, xff="192.0.2.33, 10.0.0.7").status_code == 429
    failed = AuditEvent.objects.filter(action="account.login_failed").order_by("-pk").first()
    assert failed.data["remote_addr"] == "192.0.2.34"  # the audit names the forwarded client
