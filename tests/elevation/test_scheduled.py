"""Scheduled requests: approved ahead of time, nothing in AD until the start, gone at the end.

The AD tests run the real path (Samba DC, the session's worker and its sweeper). The start is
set an hour ahead and then moved to now in the database, rather than waited for.
"""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, Grant, Policy
from jitad.elevation.selectors.access import access_overview
from jitad.elevation.selectors.backing import backed
from jitad.elevation.selectors.grants import extension_room
from jitad.elevation.services.grant_schedule import scheduled_end_due, scheduled_start_due
from jitad.elevation.services.grants import grants_revoke_for_user
from jitad.notifications.models import Notification

from . import builders
from .helpers import ad_is_member, ad_user_dn, expire_now, wait_state


def _trail(grant_id: int) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="grant", object_id=str(grant_id)).order_by("id")
                .values_list("action", flat=True))


def _with_mail(user):
    User.objects.filter(pk=user.pk).update(email=f"{user.username}@example.org")
    user.refresh_from_db()
    return user


def _approved(requester, approver, target, *, starts_at, minutes=30):
    """A request made without a start, given one in the database, then approved (the grant side only)."""
    req = services.request_create(requester=requester, target=target, duration_minutes=minutes)
    AccessRequest.objects.filter(pk=req.pk).update(starts_at=starts_at)
    services.request_approve(request=req, approver=approver, comment="ok")
    return Grant.objects.select_related("request").get(request=req)


# -- real DC, real worker ------------------------------------------------------------------
def test_scheduled_grant_reaches_ad_at_its_start_and_leaves_at_its_end(live, make_user, make_target, ldap_admin,
                                                                       samba_dc):
    """GIVEN a manual policy and a request to start in an hour
    WHEN it is approved now THEN the grant is scheduled, the sweeper leaves it alone and AD is untouched;
    WHEN its start comes THEN the membership appears in AD, ending at start + duration;
    WHEN its end comes THEN the membership is removed, and the audit trail tells the whole story."""
    target = make_target(mode="manual")
    alice = _with_mail(make_user("sca", groups=["admins"]))
    bob = make_user("scb", groups=["approvers"])
    start = timezone.now() + timedelta(hours=1)
    grant = _approved(alice, bob, target, starts_at=start)
    assert grant.state == Grant.State.SCHEDULED
    assert (grant.starts_at, grant.expires_at) == (start, start + timedelta(minutes=30))
    assert grant.claim_token is None
    assert Notification.objects.filter(event="grant.scheduled", object_id=str(grant.pk)).exists()

    services.sweep()  # the sweeper runs in the worker too; its start is an hour away
    grant.refresh_from_db()
    assert grant.state == Grant.State.SCHEDULED and grant.user_dn == "" and grant.activated_at is None
    user_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username)
    assert not ad_is_member(ldap_admin, target.group_dn, user_dn)
    assert backed(target.group_dn) == set()  # the reconciler would not keep anyone for it

    now = timezone.now()
    Grant.objects.filter(pk=grant.pk).update(starts_at=now, expires_at=now + timedelta(minutes=30))
    grant = wait_state(grant.id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, target.group_dn, user_dn)
    assert grant.expires_at == now + timedelta(minutes=30)  # the scheduled clock: from the start, not activation

    expire_now(grant.id)
    grant = wait_state(grant.id, Grant.State.REVOKED)
    assert grant.membership_removed is True and grant.revoke_reason == Grant.RevokeReason.EXPIRED
    assert not ad_is_member(ldap_admin, target.group_dn, user_dn)
    assert _trail(grant.id) == ["grant.created", "grant.scheduled", "grant.started", "grant.granting", "grant.active",
                                "grant.revoking", "grant.revoked"]


def test_a_scheduled_grant_never_keeps_another_grants_membership(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN alice's active grant and a second one of hers scheduled for later on the same target
    WHEN the active one expires THEN her membership is removed: the scheduled grant holds nothing."""
    target = make_target(mode="manual")
    alice = make_user("scc", groups=["admins"])
    bob = make_user("scd", groups=["approvers"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30)
    services.request_approve(request=req, approver=bob)
    active = wait_state(req.grant.id, Grant.State.ACTIVE)
    later = _approved(alice, bob, target, starts_at=timezone.now() + timedelta(hours=2))
    assert later.state == Grant.State.SCHEDULED

    expire_now(active.id)
    active = wait_state(active.id, Grant.State.REVOKED)
    assert active.membership_removed is True
    assert not ad_is_member(ldap_admin, target.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    later.refresh_from_db()
    assert later.state == Grant.State.SCHEDULED


def test_releasing_a_scheduled_grant_ends_it_without_touching_ad(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN a scheduled grant WHEN its holder cancels it (release) THEN it is revoked at once, membership_removed
    stays empty, the holder is told nothing changed; and the sweeper never starts it afterwards."""
    target = make_target(mode="manual")
    alice = _with_mail(make_user("sce", groups=["admins"]))
    bob = make_user("scf", groups=["approvers"])
    grant = _approved(alice, bob, target, starts_at=timezone.now() + timedelta(hours=1))
    services.grant_release(grant=grant, actor=alice)
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKED
    assert grant.revoke_reason == Grant.RevokeReason.RELEASED and grant.membership_removed is None
    Grant.objects.filter(pk=grant.pk).update(starts_at=timezone.now())
    services.sweep()
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKED and grant.activated_at is None and grant.user_dn == ""
    assert not ad_is_member(ldap_admin, target.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    assert _trail(grant.id) == ["grant.created", "grant.scheduled", "grant.revoked"]
    note = Notification.objects.get(event="grant.revoked", object_id=str(grant.pk))
    assert "before they started" in note.body and "Nothing was changed" in note.body
    history = access_overview(user=alice).history
    assert [(h.obj.pk, h.detail) for h in history if h.kind == "grant"] == [(grant.pk, "Cancelled before it started")]


# -- the rules, on the database ------------------------------------------------------------
@pytest.fixture
def setup(db):
    target = builders.target("SCH01")
    policy = builders.policy(target, schedule_max_lead_minutes=24 * 60)
    alice = builders.user("alice", "Ops")
    alice.email = "alice@example.org"
    alice.save()
    lead = builders.user("lead", "Leads")
    return target, policy, alice, lead


def _grant(setup, *, starts_at, minutes=60):
    target, _policy, alice, lead = setup
    return _approved(alice, lead, target, starts_at=starts_at, minutes=minutes)


def test_the_approval_notice_says_when_a_scheduled_grant_starts_not_that_it_is_being_added(setup):
    """GIVEN a request to start in three hours WHEN an approver approves it THEN the requester's "Approved" message
    names the start, and does not say jitad is adding them now (nothing happens in AD until then)."""
    start = timezone.now() + timedelta(hours=3)
    g = _grant(setup, starts_at=start)
    note = Notification.objects.get(event="request.approved", object_id=str(g.request_id))
    assert "The access starts at " in note.body and "adding you now" not in note.body


def test_approved_after_its_start_ends_when_it_would_have(setup):
    """GIVEN a request to start 10 min ago for 60 min WHEN approved now (scheduled-start clock, the default)
    THEN it is applied at once but still ends at start + 60 min: the late approval shortened it."""
    start = timezone.now() - timedelta(minutes=10)
    g = _grant(setup, starts_at=start)
    assert g.state == Grant.State.GRANTING
    assert (g.starts_at, g.expires_at) == (start, start + timedelta(minutes=60))


def test_approved_after_its_whole_window_ends_without_ever_touching_ad(setup):
    """GIVEN a request whose start and end have both passed WHEN approved THEN its grant ends at once as revoked
    (expired, never started), nothing is queued for AD, and the requester is told."""
    start = timezone.now() - timedelta(hours=2)
    g = _grant(setup, starts_at=start)
    assert g.state == Grant.State.REVOKED and g.revoke_reason == Grant.RevokeReason.EXPIRED
    assert g.claim_token is None and g.membership_removed is None and g.activated_at is None
    assert _trail(g.id) == ["grant.created", "grant.revoked"]
    assert AuditEvent.objects.get(object_id=str(g.id), action="grant.revoked").data["never_started"] is True
    assert Notification.objects.filter(event="grant.revoked", object_id=str(g.pk)).exists()


def test_the_sweep_starts_what_is_due_and_ends_what_ran_out(setup):
    """GIVEN three scheduled grants: one due, one not yet, one whose end passed before it could start
    WHEN the sweep's scheduled phases run THEN the due one moves to granting (started, then granting), the
    future one stays, and the one out of time is revoked without AD work."""
    target, policy, alice, lead = setup
    due = _grant(setup, starts_at=timezone.now() + timedelta(hours=1))
    future = _grant(setup, starts_at=timezone.now() + timedelta(hours=1))
    gone = _grant(setup, starts_at=timezone.now() + timedelta(hours=1))
    now = timezone.now()
    Grant.objects.filter(pk=due.pk).update(starts_at=now - timedelta(seconds=1))
    Grant.objects.filter(pk=gone.pk).update(starts_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1))
    AccessRequest.objects.filter(pk=gone.request_id).update(starts_at=now - timedelta(hours=2))

    assert scheduled_end_due(timezone.now(), limit=100) == 1
    assert scheduled_start_due(timezone.now(), limit=100) == 1
    due.refresh_from_db(), future.refresh_from_db(), gone.refresh_from_db()
    assert due.state == Grant.State.GRANTING and due.claim_token is not None
    assert due.expires_at == due.request.starts_at + timedelta(minutes=60)  # the request's start is the clock's
    assert future.state == Grant.State.SCHEDULED
    assert gone.state == Grant.State.REVOKED and gone.membership_removed is None
    assert _trail(due.id)[-2:] == ["grant.started", "grant.granting"]


def test_under_the_approval_clock_a_grant_gets_its_whole_duration_from_its_start(setup):
    """GIVEN a policy whose clock runs from when access starts WHEN a scheduled grant starts late
    THEN it ends a whole duration after it actually started."""
    target, policy, alice, lead = setup
    Policy.objects.filter(pk=policy.pk).update(schedule_clock=Policy.ScheduleClock.APPROVAL)
    g = _grant(setup, starts_at=timezone.now() + timedelta(hours=1))
    Grant.objects.filter(pk=g.pk).update(starts_at=timezone.now() - timedelta(minutes=50),
                                         expires_at=timezone.now() + timedelta(minutes=10))
    before = timezone.now()
    assert scheduled_start_due(timezone.now(), limit=100) == 1
    g.refresh_from_db()
    assert g.state == Grant.State.GRANTING and g.starts_at >= before
    assert g.expires_at == g.starts_at + timedelta(minutes=60)


def test_a_scheduled_grant_cannot_be_extended_and_shows_when_it_starts(setup):
    target, policy, alice, lead = setup
    start = timezone.now() + timedelta(hours=3)
    g = _grant(setup, starts_at=start)
    room = extension_room(grant=g, policy=policy)
    assert not room and room.code == "not_started" and "has not started yet" in room.message
    with pytest.raises(RequestRefused) as e:
        services.request_extend(grant=g, requester=alice, duration_minutes=30)
    assert e.value.code == "not_started"
    row = access_overview(user=alice).grants[0]
    assert row.grant.pk == g.pk and row.can_release and not row.can_extend and row.waits_for is None


def test_admin_revoke_and_account_removal_end_scheduled_grants(setup):
    """GIVEN two scheduled grants WHEN an admin revokes one (with a reason) and the account of the other's holder
    goes THEN both end as revoked by an administrator, with nothing to remove in AD."""
    target, policy, alice, lead = setup
    one = _grant(setup, starts_at=timezone.now() + timedelta(hours=1))
    two = _grant(setup, starts_at=timezone.now() + timedelta(hours=2))
    boss = User.objects.create_superuser("boss")
    services.grant_revoke(grant=one, actor=boss, reason="change cancelled")
    assert grants_revoke_for_user(user=alice, actor="system:sync", comment="account disabled") == 1
    for g in (one, two):
        g.refresh_from_db()
        assert g.state == Grant.State.REVOKED and g.revoke_reason == Grant.RevokeReason.ADMIN
        assert g.membership_removed is None and g.activated_at is None
    assert one.revoke_comment == "change cancelled"
    assert "change cancelled" in Notification.objects.get(event="grant.revoked", object_id=str(one.pk)).body
