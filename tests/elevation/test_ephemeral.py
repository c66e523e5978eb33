"""Ephemeral accounts end to end: a real Samba DC, the real worker, the portal's reveal.

An ephemeral grant creates an AD account for itself, puts it (not the person) in the JIT
group, shows its password once, and at the end disables it, removes it, and deletes it,
verified on the DC; an account in the ephemeral OU that no grant owns is deleted and alerted.
"""
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.audit.services import audit_verify
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import Grant
from jitad.elevation.services.grant_ephemeral import ephemeral_account_ready, ephemeral_plan
from tests.directory.helpers import user_bind
from tests.support.mfa import backup_codes, verify_session
from tests.support.waiting import wait_for

from .helpers import ad_is_member, ad_user_dn, expire_now, wait_state

Account = Grant.Account


def _exists(ldap_admin, dn: str) -> bool:
    conn = ldap_admin()
    try:
        conn.search(dn, "(objectClass=user)", "BASE", attributes=["cn"])
        return bool([e for e in conn.response if e.get("type") == "searchResEntry"])
    finally:
        conn.unbind()


def _reveal(grant: Grant, user) -> str:
    return services.grant_account_reveal(grant=grant, actor=user)


def test_an_ephemeral_grant_creates_binds_ends_and_deletes_its_account(live, make_user, make_target, eph_ou, ldap_admin,
                                                                        samba_dc):
    target = make_target(ephemeral={"ou": eph_ou, "password": {"length": 20, "classes": ["upper", "lower", "digit"]}})
    alice = make_user("alice", groups=["admins"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patch SRV")
    planned = Grant.objects.get(request=req)
    assert planned.account in (Account.PLANNED, Account.CREATED)
    assert planned.account_sam.startswith(alice.username[:15] + "-")
    assert directory.normalize_dn(planned.account_dn).endswith(directory.normalize_dn(eph_ou))

    grant = wait_state(planned.id, Grant.State.ACTIVE)
    assert grant.account == Account.CREATED and grant.account_sid.startswith("S-1-5-21-")
    assert grant.account_secret.startswith("jv1.")  # sealed, never the password itself
    # The grant's own account is in the group; the person's everyday account is not.
    assert ad_is_member(ldap_admin, target.group_dn, grant.account_dn)
    alice_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username)
    assert not ad_is_member(ldap_admin, target.group_dn, alice_dn)
    assert grant.user_dn == alice_dn  # who it is for is still recorded

    password = _reveal(grant, alice)
    assert len(password) == 20 and not any(c in password for c in "-_.,:;!?@#%+=*~^")
    assert user_bind(samba_dc, grant.account_dn, password), "the password binds during the window"
    grant.refresh_from_db()
    assert grant.account_revealed_at is not None and grant.account_secret == ""  # jitad no longer has it
    with pytest.raises(RequestRefused) as twice:
        _reveal(grant, alice)
    assert twice.value.code == "already_revealed"

    expire_now(grant.id)
    wait_state(grant.id, Grant.State.REVOKED)
    grant = wait_for(lambda: Grant.objects.filter(pk=grant.id, account=Account.DELETED).first(), timeout=30,
                     message="the ephemeral account deleted")
    assert grant.account_deleted_at is not None
    assert not _exists(ldap_admin, grant.account_dn), "the account is gone from the DC"
    assert not user_bind(samba_dc, grant.account_dn, password), "the password no longer binds"
    assert not ad_is_member(ldap_admin, target.group_dn, grant.account_dn)

    trail = list(AuditEvent.objects.filter(object_type="grant", object_id=str(grant.id)).values_list("action", "after"))
    assert [a for a, _ in trail] == [
        "grant.created", "grant.granting", "grant.account_created", "grant.active", "grant.account_revealed",
        "grant.revoking", "grant.account_disabled", "grant.revoked", "grant.account_deleted",
    ]
    revealed = AuditEvent.objects.get(object_id=str(grant.id), action="grant.account_revealed")
    assert revealed.actor == alice.username and password not in str(revealed.data)
    assert audit_verify() == []


def test_an_early_release_disables_the_account_at_once(live, make_user, make_target, eph_ou, ldap_admin, samba_dc):
    target = make_target(ephemeral={"ou": eph_ou})
    bob = make_user("bob", groups=["admins"])
    req = services.request_create(requester=bob, target=target, duration_minutes=60, justification="one change")
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)
    password = _reveal(grant, bob)
    services.grant_release(grant=grant, actor=bob)
    wait_state(grant.id, Grant.State.REVOKED)
    assert not user_bind(samba_dc, grant.account_dn, password)
    wait_for(lambda: Grant.objects.filter(pk=grant.id, account=Account.DELETED).exists(), timeout=30,
             message="the released grant's account deleted")
    assert not _exists(ldap_admin, grant.account_dn)


def test_a_personal_and_an_ephemeral_grant_in_one_group_never_keep_each_other(live, make_user, make_target, eph_ou,
                                                                                ldap_admin, samba_dc):
    """Overlapping grants keep a *person's* membership; an ephemeral account is its grant's alone."""
    from jitad.elevation.models import Policy, Target

    personal = make_target()
    ephemeral = Target.objects.create(name=f"{personal.name}-EPH", group_dn=personal.group_dn, ephemeral={"ou": eph_ou})
    Policy.objects.get(targets=personal).targets.add(ephemeral)
    carol = make_user("carol", groups=["admins"])
    own = wait_state(services.request_create(requester=carol, target=personal, duration_minutes=60,
                                             justification="first").grant.id, Grant.State.ACTIVE)
    eph = wait_state(services.request_create(requester=carol, target=ephemeral, duration_minutes=60,
                                             justification="second").grant.id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, personal.group_dn, own.user_dn)
    assert ad_is_member(ldap_admin, personal.group_dn, eph.account_dn)

    expire_now(eph.id)
    eph = wait_state(eph.id, Grant.State.REVOKED)
    assert eph.membership_removed is True, "the ephemeral account leaves although carol holds a live grant"
    assert not ad_is_member(ldap_admin, personal.group_dn, eph.account_dn)
    assert ad_is_member(ldap_admin, personal.group_dn, own.user_dn), "carol's own grant is untouched"

    expire_now(own.id)
    own = wait_state(own.id, Grant.State.REVOKED)
    assert own.membership_removed is True
    assert not ad_is_member(ldap_admin, personal.group_dn, own.user_dn)


def test_an_orphan_in_the_ephemeral_ou_is_deleted_and_alerted(live, make_user, make_target, eph_ou, ldap_admin,
                                                             alert_sink, samba_dc):
    target = make_target(ephemeral={"ou": eph_ou})
    dave = make_user("dave", groups=["admins"])
    grant = wait_state(services.request_create(requester=dave, target=target, duration_minutes=60,
                                               justification="keep me").grant.id, Grant.State.ACTIVE)
    with directory.connect() as d:
        orphan = d.ephemeral_create(ou_dn=eph_ou, sam=f"ghost-{uuid.uuid4().hex[:6]}", password="Gh-" + uuid.uuid4().hex + "!A",
                                    description="made by hand", info="")
    services.reconcile_once()
    assert not _exists(ldap_admin, orphan.dn), "the orphan is deleted"
    assert _exists(ldap_admin, grant.account_dn), "the live grant's account stays"
    wait_for(lambda: any(orphan.dn in m.get("message", "") for m in alert_sink.messages), timeout=30,
             message="the orphan alert at the webhook")
    event = AuditEvent.objects.get(action="ephemeral.orphan_deleted")
    assert event.data["dn"] == orphan.dn and event.data["was_disabled"] is False
    grant.refresh_from_db()
    assert grant.state == Grant.State.ACTIVE and grant.account == Account.CREATED


def _planned_grant(make_user, make_target, eph_ou):
    """A grant in ``granting`` with its ephemeral account planned and this test holding its claim."""
    target = make_target(mode="manual", ephemeral={"ou": eph_ou})
    erin = make_user("erin", groups=["admins"])
    req = services.request_create(requester=erin, target=target, duration_minutes=30, justification="by hand")
    token = uuid.uuid4()
    grant = Grant.objects.create(
        request=req, user=erin, target=target, group_dn=target.group_dn, expires_at=timezone.now() + timedelta(minutes=30),
        state=Grant.State.GRANTING, claim_token=token, lease_until=timezone.now() + timedelta(minutes=5),
        **ephemeral_plan(target=target, policy=req.policy, username=erin.username))
    return Grant.objects.select_related("user", "target", "request__policy").get(pk=grant.pk), token


@pytest.mark.django_db
def test_a_retry_replaces_its_own_half_made_account_and_never_takes_over_another(make_user, make_target, eph_ou,
                                                                                   ldap_admin, samba_dc):
    grant, token = _planned_grant(make_user, make_target, eph_ou)
    with directory.connect() as d:
        # An earlier attempt of this grant made the account, then died before recording it.
        half = d.ephemeral_create(ou_dn=eph_ou, sam=grant.account_sam, password="Hm-" + uuid.uuid4().hex + "!A",
                                  description="", info=f"jitad grant #{grant.pk}")
        dn = ephemeral_account_ready(d, grant, token)
        assert dn is not None and directory.normalize_dn(dn) == directory.normalize_dn(half.dn)
    grant.refresh_from_db()
    assert grant.account == Account.CREATED and grant.account_sid != half.sid, "made again, with a new SID"

    other, other_token = _planned_grant(make_user, make_target, eph_ou)
    with directory.connect() as d:
        d.ephemeral_create(ou_dn=eph_ou, sam=other.account_sam, password="Sq-" + uuid.uuid4().hex + "!A",
                           description="", info="someone else's")
        with pytest.raises(directory.DirectoryRejected, match="not taken over"):
            ephemeral_account_ready(d, other, other_token)
    assert _exists(ldap_admin, other.account_dn), "an account that is not this grant's is left alone"
    other.refresh_from_db()
    assert other.account == Account.PLANNED


@pytest.mark.django_db
def test_a_delete_jitad_may_not_do_goes_to_delete_failed_and_alerts(make_user, make_target, eph_ou, samba_dc):
    """A grant row pointing its account outside the JIT OU (a tampered record) is refused by the seam, alerted."""
    from jitad.notifications.models import Notification

    grant, token = _planned_grant(make_user, make_target, eph_ou)
    Grant.objects.filter(pk=grant.pk).update(state=Grant.State.REVOKED, account=Account.DISABLED,
                                             account_dn=f"CN={grant.account_sam},CN=Users,{samba_dc.base_dn}")
    services.ephemeral_accounts_delete_execute(grant_ids=[grant.pk], token=token)
    grant.refresh_from_db()
    assert grant.account == Account.DELETE_FAILED and "JIT OU" in grant.last_error
    assert grant.next_attempt_at is not None and grant.claim_token is None  # the sweep keeps trying
    note = Notification.objects.get(event="grant.account_delete_failed")
    assert grant.account_sam in note.subject
    assert AuditEvent.objects.filter(object_id=str(grant.pk), action="grant.account_delete_failed").exists()


@pytest.mark.django_db
def test_the_portal_shows_the_password_once_with_a_code(client, make_user, make_target, eph_ou, samba_dc):
    grant, token = _planned_grant(make_user, make_target, eph_ou)
    with directory.connect() as d:
        ephemeral_account_ready(d, grant, token)
    Grant.objects.filter(pk=grant.pk).update(state=Grant.State.ACTIVE, claim_token=None)
    erin = grant.user
    codes = backup_codes(erin, 3)
    verify_session(client, erin)
    page = reverse("elevation:grant-account", args=[grant.pk])
    shown = client.get(page)
    assert shown.status_code == 200 and f"{grant.account_sam}@jitad.test" in shown.content.decode()  # its UPN
    assert "Show the password once" in shown.content.decode()
    wrong = client.post(page, {"otp": "000000"})
    assert wrong.status_code == 400 and "account-password" not in wrong.content.decode()
    revealed = client.post(page, {"otp": codes[0]})
    body = revealed.content.decode()
    assert revealed.status_code == 200 and 'id="account-password"' in body
    assert "no-store" in revealed["Cache-Control"] and revealed["Referrer-Policy"] == "no-referrer"
    password = body.split('id="account-password"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert user_bind(samba_dc, Grant.objects.get(pk=grant.pk).account_dn, password)
    again = client.post(page, {"otp": codes[1]})
    assert again.status_code == 409 and "never shown twice" in again.content.decode()
    assert password not in again.content.decode()
    # Nobody else sees the page, not even that it exists.
    verify_session(client, make_user("frank", groups=["admins"]))
    assert client.get(page).status_code == 404


@pytest.mark.django_db
def test_the_api_shows_the_password_once_to_the_holder(make_user, make_target, eph_ou, samba_dc):
    from .test_api import Caller

    grant, token = _planned_grant(make_user, make_target, eph_ou)
    with directory.connect() as d:
        ephemeral_account_ready(d, grant, token)
    Grant.objects.filter(pk=grant.pk).update(state=Grant.State.ACTIVE, claim_token=None)
    path = f"/api/v1/requests/{grant.request_id}/account"
    holder = Caller(grant.user)

    listed = holder.get(f"/api/v1/requests/{grant.request_id}").json()["grant"]
    assert listed["account"] == "created" and listed["account_name"] == grant.account_sam
    assert listed["account_revealed_at"] is None

    assert holder.post(path, otp="000000").status_code == 403
    shown = holder.post(path)
    assert shown.status_code == 200, shown.json()
    body = shown.json()
    assert body["account"] == grant.account_sam and "no-store" in shown["Cache-Control"]
    assert user_bind(samba_dc, body["dn"], body["password"])
    again = holder.post(path)
    assert again.status_code == 409 and again.json()["code"] == "already_revealed"
    assert body["password"] not in again.content.decode()


def test_an_account_that_was_only_planned_is_closed_by_the_sweep(live, make_user, make_target, eph_ou, ldap_admin):
    """A grant that ended before it was applied (scheduled, then released) never made its account: the sweep
    still confirms on every DC that it does not exist and closes the account's record."""
    grant, _token = _planned_grant(make_user, make_target, eph_ou)
    Grant.objects.filter(pk=grant.pk).update(state=Grant.State.REVOKED, revoked_at=timezone.now(), claim_token=None,
                                             lease_until=None)
    closed = wait_for(lambda: Grant.objects.filter(pk=grant.pk, account=Account.DELETED).first(), timeout=30,
                      message="the planned account closed")
    assert closed.account_deleted_at is not None and not _exists(ldap_admin, grant.account_dn)
    event = AuditEvent.objects.get(object_id=str(grant.pk), action="grant.account_deleted")
    assert event.before == Account.PLANNED and event.data["deleted_now"] is False
