"""The AD login backend against a real Samba DC: bind as the person, mirror them locally."""
import subprocess
import uuid

import pytest
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory, override_settings
from ldap3 import MODIFY_REPLACE

from jitad import directory
from jitad.accounts.backends import ActiveDirectoryBackend
from jitad.accounts.models import DirectoryAccount
from jitad.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

DEAD_URL = "ldaps://127.0.0.1:1"  # nothing listens on port 1: refused at once


@pytest.fixture
def ad_person(jit_ou, ldap_admin):
    """An AD user with a known password, mail and names, in a nested group chain."""

    def make(groups=()):
        sam = f"p{uuid.uuid4().hex[:8]}"
        password = "Pw-" + uuid.uuid4().hex
        with directory.connect() as d:
            dn = d.ensure_user(sam, jit_ou, password=password, display_name=f"Pat {sam}")
            conn = ldap_admin()
            conn.modify(dn, {"mail": [(MODIFY_REPLACE, [f"{sam}@jitad.test"])], "givenName": [(MODIFY_REPLACE, ["Pat"])],
                             "sn": [(MODIFY_REPLACE, ["Example"])]})
            conn.unbind()
            for outer, inner in groups:
                outer_dn = d.ensure_group(outer, jit_ou)
                inner_dn = d.ensure_group(inner, jit_ou)
                d.add_member(outer_dn, inner_dn)
                d.add_member(inner_dn, dn)
        return sam, password, dn

    return make


def _request():
    return RequestFactory().post("/account/login/")


def test_good_password_creates_the_local_user_with_nested_groups(ad_person):
    """GIVEN an AD user in Inner, and Inner inside Outer WHEN they log in THEN a local user
    exists with their names and mail, no usable local password, and both groups."""
    tag = uuid.uuid4().hex[:6]
    sam, password, dn = ad_person(groups=[(f"Outer-{tag}", f"Inner-{tag}")])
    user = authenticate(_request(), username=sam, password=password)
    assert user is not None and user.username == sam
    assert (user.first_name, user.last_name, user.email) == ("Pat", "Example", f"{sam}@jitad.test")
    assert not user.has_usable_password()
    names = set(user.groups.values_list("name", flat=True))
    assert {f"Outer-{tag}", f"Inner-{tag}"} <= names  # the primary group (Domain Users) is not a member link
    link = DirectoryAccount.objects.get(user=user)
    assert link.dn.lower() == dn.lower() and len(link.guid) == 36 and link.sid.startswith("S-1-5-21-")
    assert AuditEvent.objects.filter(action="account.created", actor=sam).exists()


def test_login_forms_and_group_changes(ad_person, jit_ou):
    """UPN and DOMAIN\\user work; a group removed in AD is gone locally at the next login."""
    tag = uuid.uuid4().hex[:6]
    sam, password, dn = ad_person(groups=[(f"Outer-{tag}", f"Inner-{tag}")])
    assert authenticate(_request(), username=f"{sam}@jitad.test", password=password) is not None
    with directory.connect() as d:
        inner_dn = d.ensure_group(f"Inner-{tag}", jit_ou)
        d.remove_member(inner_dn, dn)
    user = authenticate(_request(), username=f"JITAD\\{sam}", password=password)
    assert user is not None
    names = set(user.groups.values_list("name", flat=True))
    assert f"Inner-{tag}" not in names and f"Outer-{tag}" not in names


def test_wrong_password_and_unknown_user_look_the_same(ad_person):
    sam, _password, _dn = ad_person()
    for name, pw in ((sam, "not-the-password"), (f"nobody{uuid.uuid4().hex[:6]}", "whatever-1")):
        request = _request()
        assert authenticate(request, username=name, password=pw) is None
        assert request.jitad_login_error == directory.DirectoryAuthFailed.INVALID
    assert AuditEvent.objects.filter(action="account.login_failed", actor=sam, reason="invalid_credentials").exists()


def test_empty_password_is_refused_before_the_dc_sees_it(ad_person):
    """An empty password would make the bind 'unauthenticated', which a DC accepts."""
    sam, _password, _dn = ad_person()
    with pytest.raises(directory.DirectoryAuthFailed):
        directory.authenticate_user(sam, "")
    assert authenticate(_request(), username=sam, password="") is None


def test_disabled_account_is_refused_with_its_reason(ad_person, ldap_admin):
    sam, password, dn = ad_person()
    conn = ldap_admin()
    conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [514])]})
    conn.unbind()
    request = _request()
    with pytest.raises(PermissionDenied):
        ActiveDirectoryBackend().authenticate(request, username=sam, password=password)
    assert request.jitad_login_error == directory.DirectoryAuthFailed.DISABLED
    # The full authenticate() stops at PermissionDenied: no other backend gets a go.
    assert authenticate(_request(), username=sam, password=password) is None


def test_locked_account_is_refused_with_its_reason(ad_person, samba_dc):
    """GIVEN a lockout policy of 3 bad passwords for this user only (a PSO) WHEN they are locked
    out THEN even the right password is refused, and the reason says 'locked'."""
    sam, password, _dn = ad_person()
    pso = f"pso-{uuid.uuid4().hex[:6]}"
    conf = ["-s", str(samba_dc.smb_conf)]
    subprocess.run(["samba-tool", "domain", "passwordsettings", "pso", "create", pso, "1",
                    "--account-lockout-threshold=3", "--account-lockout-duration=30", "--reset-account-lockout-after=30",
                    *conf], check=True, capture_output=True)
    subprocess.run(["samba-tool", "domain", "passwordsettings", "pso", "apply", pso, sam, *conf], check=True, capture_output=True)
    for i in range(3):
        assert authenticate(_request(), username=sam, password=f"wrong-{i}") is None
    request = _request()
    with pytest.raises(PermissionDenied):
        ActiveDirectoryBackend().authenticate(request, username=sam, password=password)
    assert request.jitad_login_error == directory.DirectoryAuthFailed.LOCKED


def test_renamed_ad_user_keeps_the_same_local_account(ad_person, ldap_admin):
    sam, password, dn = ad_person()
    first = authenticate(_request(), username=sam, password=password)
    new_sam = f"r{uuid.uuid4().hex[:8]}"
    conn = ldap_admin()
    conn.modify(dn, {"sAMAccountName": [(MODIFY_REPLACE, [new_sam])]})
    conn.unbind()
    again = authenticate(_request(), username=new_sam, password=password)
    assert again is not None and again.pk == first.pk and again.username == new_sam


def test_a_local_account_is_never_taken_over_by_ad(ad_person, django_user_model):
    """GIVEN a local account 'x' and an AD account 'x' WHEN someone logs in as 'x' with the AD
    password THEN the AD backend stays out of it: only the local password opens 'x'."""
    sam, password, _dn = ad_person()
    local = django_user_model.objects.create_user(username=sam, password="Local-passphrase-77")
    assert authenticate(_request(), username=sam, password=password) is None
    assert authenticate(_request(), username=sam, password="Local-passphrase-77") == local
    assert not DirectoryAccount.objects.filter(user=local).exists()


def test_dc_down_gives_a_clear_reason_and_local_accounts_still_work(ad_person, django_user_model):
    sam, password, _dn = ad_person()
    local = django_user_model.objects.create_user(username=f"bg{uuid.uuid4().hex[:6]}", password="Local-passphrase-78")
    with override_settings(JITAD_LDAP_URLS=[DEAD_URL]):
        request = _request()
        assert authenticate(request, username=sam, password=password) is None
        assert request.jitad_login_error == "directory_unavailable"
        assert authenticate(_request(), username=local.username, password="Local-passphrase-78") == local


def test_login_page_shows_the_reason_and_never_500s(client, ad_person, ldap_admin):
    sam, password, dn = ad_person()
    bad = client.post("/account/login/", {"username": sam, "password": "nope-nope"})
    assert bad.status_code == 401 and b"not right" in bad.content
    conn = ldap_admin()
    conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [514])]})
    conn.unbind()
    disabled = client.post("/account/login/", {"username": sam, "password": password})
    assert disabled.status_code == 401 and b"disabled" in disabled.content
    with override_settings(JITAD_LDAP_URLS=[DEAD_URL]):
        down = client.post("/account/login/", {"username": sam, "password": password})
    assert down.status_code == 401 and b"cannot be reached" in down.content
    hostile = client.post("/account/login/", {"username": "*)(uid=*))(|(uid=*", "password": "x\x00y"})
    assert hostile.status_code in (400, 401)


def test_good_login_goes_to_mfa_enrolment(client, ad_person):
    sam, password, _dn = ad_person()
    response = client.post("/account/login/", {"username": sam, "password": password, "next": "/eligible/"})
    assert response.status_code == 302 and response.url.startswith("/account/mfa/enrol/")
    assert "next=%2Feligible%2F" in response.url


def test_a_person_blocked_in_jitad_stays_blocked_after_an_ad_login(ad_person):
    sam, password, _dn = ad_person()
    user = authenticate(_request(), username=sam, password=password)
    user.is_active = False
    user.save()
    request = _request()
    with pytest.raises(PermissionDenied):
        ActiveDirectoryBackend().authenticate(request, username=sam, password=password)
    assert request.jitad_login_error == "account_blocked"
    user.refresh_from_db()
    assert not user.is_active


def test_the_engine_finds_the_ad_account_by_guid_not_by_a_reused_name(live, ad_person, ldap_admin, make_target, jit_ou):
    """GIVEN alice logged in (linked by objectGUID), was renamed in AD, and somebody new got
    her old name WHEN a grant for her local account is applied THEN her own AD account gets
    the membership, not the newcomer who now answers to the old name."""
    from jitad.elevation import services
    from tests.elevation.helpers import ad_is_member, wait_state

    sam, password, dn = ad_person()
    user = authenticate(_request(), username=sam, password=password)
    conn = ldap_admin()
    conn.modify(dn, {"sAMAccountName": [(MODIFY_REPLACE, [f"r{uuid.uuid4().hex[:8]}"])]})
    conn.unbind()
    with directory.connect() as d:
        d.ensure_ou(f"OU=newcomers,{jit_ou}")
        newcomer_dn = d.ensure_user(sam, f"OU=newcomers,{jit_ou}", password="Pw-" + uuid.uuid4().hex)
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get_or_create(name="admins")[0])
    target = make_target()
    req = services.request_create(requester=user, target=target, duration_minutes=30)
    wait_state(req.grant.id, "active")
    assert ad_is_member(ldap_admin, target.group_dn, dn)
    assert not ad_is_member(ldap_admin, target.group_dn, newcomer_dn)
