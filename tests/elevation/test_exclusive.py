"""Exclusive elevation, the grant side: one admin at a time; a second grant waits its turn, first come first served.

The AD tests run the real path (Samba DC, the session's worker and its sweeper). The races run
real threads against the database, as the break-glass checkout races do.
"""
import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, Grant, Target
from jitad.elevation.selectors.access import access_overview
from jitad.elevation.selectors.grants import HOLDING_STATES
from jitad.elevation.services.grant_schedule import scheduled_start_due, scheduled_start_exclusive
from jitad.elevation.services.grants import grant_create_from
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for

from . import builders
from .helpers import ad_is_member, ad_user_dn, wait_state


def _trail(grant_id: int) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="grant", object_id=str(grant_id)).order_by("id")
                .values_list("action", flat=True))


def _exclusive(target, mode="wait"):
    Target.objects.filter(pk=target.pk).update(exclusive=mode)
    target.refresh_from_db()
    return target


def _with_mail(user):
    User.objects.filter(pk=user.pk).update(email=f"{user.username}@example.org")
    user.refresh_from_db()
    return user


def _holders(target) -> set[int]:
    return set(Grant.objects.filter(target=target, state__in=HOLDING_STATES).values_list("user_id", flat=True))


# -- real DC, real worker ------------------------------------------------------------------
def test_second_admin_waits_and_gets_the_target_when_the_first_releases(live, make_user, make_target, ldap_admin,
                                                                        samba_dc):
    """GIVEN a target that allows one admin at a time (wait mode) and alice active on it
    WHEN carol's request is approved THEN her grant is scheduled, waiting for alice (audited, told, shown on
    My access), and nothing of hers is in AD, however often the sweeper runs;
    WHEN alice releases THEN alice's membership goes and carol's arrives, for her whole duration."""
    target = _exclusive(make_target())
    alice = make_user("exa", groups=["admins"])
    carol = _with_mail(make_user("exc", groups=["admins"]))
    first = services.request_create(requester=alice, target=target, duration_minutes=30)
    held = wait_state(first.grant.id, Grant.State.ACTIVE)

    second = services.request_create(requester=carol, target=target, duration_minutes=45)
    waiting = Grant.objects.get(request=second)
    assert waiting.state == Grant.State.SCHEDULED and waiting.claim_token is None
    assert _trail(waiting.id) == ["grant.created", "grant.scheduled", "grant.waiting"]
    event = AuditEvent.objects.get(object_id=str(waiting.id), action="grant.waiting")
    assert (event.data["holder"], event.data["holder_grant"]) == (alice.username, held.pk)
    assert Notification.objects.filter(event="grant.waiting", object_id=str(waiting.pk)).exists()
    row = access_overview(user=carol).grants[0]
    assert row.waits_for.pk == held.pk and row.can_release and not row.can_extend

    services.sweep()
    waiting.refresh_from_db()
    assert waiting.state == Grant.State.SCHEDULED and waiting.user_dn == ""
    alice_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username)
    carol_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, carol.username)
    assert ad_is_member(ldap_admin, target.group_dn, alice_dn)
    assert not ad_is_member(ldap_admin, target.group_dn, carol_dn)

    services.grant_release(grant=held, actor=alice)
    held = wait_state(held.id, Grant.State.REVOKED)
    waiting = wait_state(waiting.id, Grant.State.ACTIVE)
    assert not ad_is_member(ldap_admin, target.group_dn, alice_dn)
    assert ad_is_member(ldap_admin, target.group_dn, carol_dn)
    assert waiting.starts_at >= held.revoked_at  # it started once the target was free
    assert waiting.expires_at == waiting.starts_at + timedelta(minutes=45)  # its whole duration, from its start
    assert _trail(waiting.id)[-3:] == ["grant.started", "grant.granting", "grant.active"]
    assert Notification.objects.filter(event="grant.started", object_id=str(waiting.pk)).exists()


def test_simultaneous_approvals_on_an_exclusive_target_start_one_grant(live, make_user, make_target, ldap_admin,
                                                                       samba_dc):
    """GIVEN five admins' requests for a free one-at-a-time target
    WHEN an approver approves all five at the same instant (five threads)
    THEN exactly one grant starts and reaches AD; the four others wait, scheduled, with nothing in AD."""
    target = _exclusive(make_target(mode="manual"))
    lead = make_user("exl", groups=["approvers"])
    people = [make_user(f"ex{i}", groups=["admins"]) for i in range(5)]
    requests = [services.request_create(requester=p, target=target, duration_minutes=30) for p in people]
    barrier = threading.Barrier(len(requests))
    errors = []

    def approve(req):
        try:
            barrier.wait()
            services.request_approve(request=AccessRequest.objects.get(pk=req.pk), approver=lead, comment="ok")
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    grants = list(Grant.objects.filter(target=target))
    started = [g for g in grants if g.state != Grant.State.SCHEDULED]
    assert len(grants) == 5 and len(started) == 1, [(g.user.username, g.state) for g in grants]
    winner = wait_state(started[0].id, Grant.State.ACTIVE)
    services.sweep()
    members = [p for p in people if ad_is_member(ldap_admin, target.group_dn,
                                                 ad_user_dn(ldap_admin, samba_dc.base_dn, p.username))]
    assert members == [winner.user]
    assert Grant.objects.filter(target=target, state=Grant.State.SCHEDULED).count() == 4


def test_racing_sweeps_start_one_waiting_grant(live, make_user, make_target):
    """GIVEN two grants waiting for a one-at-a-time target that has just become free
    WHEN four sweeps (threads, besides the worker's own) try to start them at the same instant
    THEN exactly one starts; the other keeps waiting behind it."""
    target = _exclusive(make_target(mode="manual"))
    lead = make_user("exm", groups=["approvers"])
    holder, b, c = (make_user(f"ex{n}", groups=["admins"]) for n in "hbc")
    first = services.request_create(requester=holder, target=target, duration_minutes=30)
    services.request_approve(request=first, approver=lead)
    for person in (b, c):
        services.request_approve(request=services.request_create(requester=person, target=target, duration_minutes=30),
                                 approver=lead)
    assert Grant.objects.filter(target=target, state=Grant.State.SCHEDULED).count() == 2
    # The holder's grant ends without AD work, so both waiting grants are due and the target free at once.
    Grant.objects.filter(request=first).update(state=Grant.State.REVOKED, revoked_at=timezone.now(), claim_token=None)
    barrier = threading.Barrier(4)
    errors = []

    def start():
        try:
            barrier.wait()
            scheduled_start_exclusive(target_id=target.pk)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(_holders(target)) == 1
    assert Grant.objects.filter(target=target, state=Grant.State.SCHEDULED).count() == 1
    # First come, first served: b was approved before c.
    assert _holders(target) == {b.pk}
    wait_for(lambda: Grant.objects.filter(target=target, user=b, state=Grant.State.ACTIVE).exists(), timeout=30,
             message="b's grant to become active")


# -- the rules, on the database ------------------------------------------------------------
@pytest.fixture
def setup(db):
    target = _exclusive(builders.target("EXC01"))
    policy = builders.policy(target, schedule_max_lead_minutes=24 * 60)
    lead = builders.user("lead", "Leads")
    return target, policy, lead


def _person(name):
    u = builders.user(name, "Ops")
    u.email = f"{name}@example.org"
    u.save()
    return u


def _approve(setup, person, *, starts_at=None, minutes=60) -> Grant:
    target, _policy, lead = setup
    req = services.request_create(requester=person, target=target, duration_minutes=minutes)
    if starts_at is not None:
        AccessRequest.objects.filter(pk=req.pk).update(starts_at=starts_at)
    services.request_approve(request=req, approver=lead)
    return Grant.objects.get(request=req)


def test_waiting_grants_start_first_come_first_served(setup):
    """GIVEN alice holding the target, then bob and carol waiting, in that order
    WHEN alice's grant ends THEN bob starts and carol waits on, now for bob; a newcomer queues behind carol."""
    alice, bob, carol, dave = (_person(n) for n in ("alice", "bob", "carol", "dave"))
    a = _approve(setup, alice)
    b, c = _approve(setup, bob), _approve(setup, carol)
    assert a.state == Grant.State.GRANTING and (b.state, c.state) == (Grant.State.SCHEDULED, Grant.State.SCHEDULED)
    assert scheduled_start_due(timezone.now(), limit=100) == 0

    Grant.objects.filter(pk=a.pk).update(state=Grant.State.REVOKED, revoked_at=timezone.now())
    assert scheduled_start_due(timezone.now(), limit=100) == 1
    b.refresh_from_db(), c.refresh_from_db()
    assert b.state == Grant.State.GRANTING and c.state == Grant.State.SCHEDULED
    assert access_overview(user=carol).grants[0].waits_for.pk == b.pk
    d = _approve(setup, dave)  # the target is free of nobody: bob holds it, carol is ahead
    assert d.state == Grant.State.SCHEDULED
    Grant.objects.filter(pk=b.pk).update(state=Grant.State.REVOKED, revoked_at=timezone.now())
    assert scheduled_start_due(timezone.now(), limit=100) == 1
    c.refresh_from_db(), d.refresh_from_db()
    assert c.state == Grant.State.GRANTING and d.state == Grant.State.SCHEDULED


def test_a_grant_that_waited_starts_after_the_holder_ended_even_when_the_sweep_began_before(setup):
    """GIVEN bob waiting for alice on a one-at-a-time target, and a sweep whose clock was read before alice's
    revocation was recorded (the revoke task ran beside it)
    WHEN that sweep starts bob THEN his start is not before alice's end: the record never shows two holders."""
    alice, bob = _person("alice"), _person("bob")
    a, b = _approve(setup, alice), _approve(setup, bob)
    assert b.state == Grant.State.SCHEDULED
    swept_at = timezone.now()
    Grant.objects.filter(pk=a.pk).update(state=Grant.State.REVOKED, revoked_at=timezone.now() + timedelta(seconds=1))
    a.refresh_from_db()
    with pytest.MonkeyPatch.context() as mp:  # the revocation was recorded a moment after the sweep's clock
        mp.setattr(timezone, "now", lambda: a.revoked_at)
        assert scheduled_start_due(swept_at, limit=100) == 1
    b.refresh_from_db()
    assert b.state == Grant.State.GRANTING and b.starts_at >= a.revoked_at
    assert b.expires_at == b.starts_at + timedelta(minutes=60)


def test_a_refuse_mode_target_taken_between_request_and_approval_refuses_the_approval(setup):
    """GIVEN a target that refuses a second request while held, and carol's request made while it was free
    WHEN alice gets it first and carol's request is approved after THEN the approval is refused with who holds it
    (the request stays pending, for after alice or to time out), and no second grant exists."""
    target = _exclusive(setup[0], "refuse")
    alice, carol = _person("alice"), _person("carol")
    req = services.request_create(requester=carol, target=target, duration_minutes=60)
    a = _approve(setup, alice)
    assert a.state == Grant.State.GRANTING
    with pytest.raises(RequestRefused) as refused:
        services.request_approve(request=req, approver=setup[2])
    assert refused.value.code == "target_held" and "held by alice" in refused.value.message
    req.refresh_from_db()
    assert req.state == AccessRequest.State.PENDING and not Grant.objects.filter(request=req).exists()


def test_a_refuse_mode_grant_made_while_the_target_is_held_waits_rather_than_both_holding(setup):
    """GIVEN a refuse-mode target alice holds WHEN a grant for carol is made anyway (a race the approval's own check
    cannot see: both committed at once) THEN the grant side makes it wait; two people never hold it together."""
    target = _exclusive(setup[0], "refuse")
    alice, carol = _person("alice"), _person("carol")
    req = services.request_create(requester=carol, target=target, duration_minutes=60)
    _approve(setup, alice)
    with transaction.atomic():
        locked = AccessRequest.objects.select_for_update().get(pk=req.pk)
        locked.state = AccessRequest.State.APPROVED
        locked.save(update_fields=["state"])
        c = grant_create_from(request=locked, actor="test")
    assert c.state == Grant.State.SCHEDULED and "grant.waiting" in _trail(c.id)


def test_a_scheduled_start_on_a_held_target_waits_once_and_keeps_its_end(setup):
    """GIVEN bob's grant scheduled for later on a target alice holds
    WHEN its start comes THEN it waits (audited and told once, however many sweeps);
    WHEN alice's grant ends THEN it starts, still ending at its scheduled start + duration (the wait shortened it)."""
    alice, bob = _person("alice"), _person("bob")
    a = _approve(setup, alice)
    start = timezone.now() + timedelta(hours=1)
    b = _approve(setup, bob, starts_at=start)
    assert b.state == Grant.State.SCHEDULED and "grant.waiting" not in _trail(b.id)
    Grant.objects.filter(pk=b.pk).update(starts_at=timezone.now() - timedelta(minutes=5))
    for _ in range(3):
        assert scheduled_start_due(timezone.now(), limit=100) == 0
    assert _trail(b.id).count("grant.waiting") == 1
    assert Notification.objects.filter(event="grant.waiting", object_id=str(b.pk)).count() == 1

    Grant.objects.filter(pk=a.pk).update(state=Grant.State.REVOKED, revoked_at=timezone.now())
    assert scheduled_start_due(timezone.now(), limit=100) == 1
    b.refresh_from_db()
    assert b.state == Grant.State.GRANTING and b.expires_at == start + timedelta(minutes=60)
    assert Notification.objects.filter(event="grant.started", object_id=str(b.pk)).exists()


def test_the_same_person_never_waits_for_themselves(setup):
    alice = _person("alice")
    first, second = _approve(setup, alice), _approve(setup, alice)
    assert (first.state, second.state) == (Grant.State.GRANTING, Grant.State.GRANTING)


# -- races on the database alone (PostgreSQL in CI: the row locks are what keeps them apart) ---------
def _race(fn, args_list):
    barrier = threading.Barrier(len(args_list))
    errors = []

    def run(*args):
        try:
            barrier.wait()
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_racing_approvals_and_sweeps_never_start_two_grants():
    """GIVEN six people's requests for a free one-at-a-time target
    WHEN an approver approves all six at the same instant THEN one grant starts and five wait;
    WHEN that one ends and four sweeps race to start the next THEN exactly one more starts, the first in line."""
    t = _exclusive(builders.target("EXC02"))
    builders.policy(t)
    lead = builders.user("lead", "Leads")
    people = [builders.user(f"racer{i}", "Ops") for i in range(6)]
    reqs = [services.request_create(requester=p, target=t, duration_minutes=30) for p in people]
    errors = _race(lambda r: services.request_approve(request=AccessRequest.objects.get(pk=r.pk), approver=lead),
                   [(r,) for r in reqs])
    assert errors == []
    started = Grant.objects.filter(target=t).exclude(state=Grant.State.SCHEDULED)
    assert started.count() == 1 and Grant.objects.filter(target=t, state=Grant.State.SCHEDULED).count() == 5
    first = started.get()

    in_line = Grant.objects.filter(target=t, state=Grant.State.SCHEDULED).order_by("starts_at", "id").first()
    Grant.objects.filter(pk=first.pk).update(state=Grant.State.REVOKED, revoked_at=timezone.now(), claim_token=None)
    errors = _race(lambda: scheduled_start_exclusive(target_id=t.pk), [()] * 4)
    assert errors == []
    assert len(_holders(t)) == 1
    assert Grant.objects.get(target=t, state__in=HOLDING_STATES).pk == in_line.pk
    assert Grant.objects.filter(target=t, state=Grant.State.SCHEDULED).count() == 4


def test_a_late_approval_past_its_end_on_a_held_target_just_ends(setup):
    """GIVEN a request whose scheduled window has passed, on a target someone else holds
    WHEN it is approved THEN it ends at once (never started), rather than waiting for a turn it cannot use."""
    alice, bob = _person("alice"), _person("bob")
    _approve(setup, alice)
    b = _approve(setup, bob, starts_at=timezone.now() - timedelta(hours=2))
    assert b.state == Grant.State.REVOKED and "grant.waiting" not in _trail(b.id)
    assert not Notification.objects.filter(event="grant.waiting", object_id=str(b.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_an_approval_and_a_scheduled_start_racing_for_a_free_target_start_one(monkeypatch):
    """GIVEN a free one-at-a-time target and bob's grant scheduled to start there
    WHEN alice's request is approved, and the sweep tries to start bob's grant right after the approval found
    the target free but before it committed
    THEN bob's grant waits for alice's: the sweep decides only once the approval's lock on the target is gone."""
    from jitad.elevation.services import grants as grant_services

    t = _exclusive(builders.target("EXC03"))
    builders.policy(t, schedule_max_lead_minutes=1440)
    lead, alice, bob = builders.user("lead", "Leads"), builders.user("alice", "Ops"), builders.user("bob", "Ops")
    start = timezone.now() + timedelta(hours=1)
    breq = services.request_create(requester=bob, target=t, duration_minutes=30)
    AccessRequest.objects.filter(pk=breq.pk).update(starts_at=start)
    services.request_approve(request=breq, approver=lead)
    scheduled = Grant.objects.get(request=breq)
    assert scheduled.state == Grant.State.SCHEDULED
    areq = services.request_create(requester=alice, target=t, duration_minutes=30)

    found_free, sweep_done = threading.Event(), threading.Event()
    real = grant_services.exclusive_holder

    def holder_then_pause(**kwargs):
        found = real(**kwargs)
        found_free.set()
        sweep_done.wait(3)  # the sweep runs now, while this approval has not committed
        return found

    monkeypatch.setattr(grant_services, "exclusive_holder", holder_then_pause)
    errors = []

    def approve():
        try:
            services.request_approve(request=AccessRequest.objects.get(pk=areq.pk), approver=lead)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            found_free.set()
            connection.close()

    def sweep():
        try:
            found_free.wait(30)
            scheduled_start_exclusive(target_id=t.pk, now=start + timedelta(seconds=1))  # bob's start has come
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            sweep_done.set()
            connection.close()

    threads = [threading.Thread(target=approve), threading.Thread(target=sweep)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    # Alice's grant started. The session's worker may already have taken it on (this test's target has no AD
    # group, so it can end grant_failed), which still holds the target.
    assert Grant.objects.get(request=areq).state in HOLDING_STATES
    scheduled.refresh_from_db()
    assert scheduled.state == Grant.State.SCHEDULED, "both grants started on a one-at-a-time target"
    assert len(_holders(t)) == 1
