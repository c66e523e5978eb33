"""The sweep is woken when a grant's time comes, not found by polling.

The elected scheduler asks when the next grant ends (or a retry, or a scheduled start, is
due) and sends the sweep at that instant; the periodic sweep stays as the safety net. The
end-to-end test runs a real worker whose periodic sweep is an hour apart: only a wake-up
can have removed the member within seconds of the grant's end.
"""
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Grant
from jitad.elevation.selectors.due import sweep_next_due
from jitad.elevation.services import grant_sweep
from jitad.elevation.services.grant_sweep import (AHEAD_TASK, SWEEP_LEASE, SWEEP_TASK, revocations_claim_ahead,
                                                  revoke_ahead_wakeup, sweep_once, sweep_wakeup)
from jitad.engine.services import lease_release, lease_take
from tests.support.worker import CeleryWorker, background_workers_stopped

from . import builders
from .helpers import ad_is_member, wait_state


def _grant(state, *, user="u", **fields) -> Grant:
    target = builders.target(f"SRV-{user}")
    req = AccessRequest.objects.create(requester=builders.user(user), target=target,
                                       policy=builders.policy(target, name=f"p-{user}"), duration_minutes=60,
                                       state=AccessRequest.State.APPROVED)
    return Grant.objects.create(request=req, user=req.requester, target=target, group_dn=target.group_dn,
                                state=state, **fields)


@pytest.mark.django_db
def test_next_due_is_the_earliest_end_retry_or_start_after_the_instant_asked():
    now = timezone.now()
    end = now + timedelta(seconds=30)
    _grant(Grant.State.ACTIVE, user="a", expires_at=end)
    _grant(Grant.State.ACTIVE, user="b", expires_at=now + timedelta(seconds=90))
    # Work that is not announced by these instants is not asked about:
    _grant(Grant.State.ACTIVE, user="c", expires_at=now + timedelta(seconds=5),
           revoke_requested_at=now)  # its release sent its own message
    _grant(Grant.State.REVOKED, user="d", expires_at=now + timedelta(seconds=1), revoked_at=now)
    assert sweep_next_due(after=now) == end

    retry = now + timedelta(seconds=12)
    _grant(Grant.State.REVOKE_FAILED, user="e", expires_at=now - timedelta(minutes=1), next_attempt_at=retry)
    assert sweep_next_due(after=now) == retry
    check = now + timedelta(seconds=8)  # an ended grant's check on its server (or account deletion), retried
    _grant(Grant.State.REVOKED, user="f", expires_at=now - timedelta(minutes=1), revoked_at=now,
           host_revoke_check=Grant.HostCheck.PENDING, next_attempt_at=check)
    assert sweep_next_due(after=now) == check
    start = now + timedelta(seconds=3)
    _grant(Grant.State.SCHEDULED, user="g", starts_at=start, expires_at=start + timedelta(hours=1))
    assert sweep_next_due(after=now) == start

    # Strictly after: what is due at or before the instant asked was the last wake-up's work.
    assert sweep_next_due(after=start) == check
    assert sweep_next_due(after=now + timedelta(hours=3)) is None
    assert sweep_wakeup(after=now) == (SWEEP_TASK, start)
    assert sweep_wakeup(after=now + timedelta(hours=3)) is None


@pytest.mark.django_db
def test_a_sweep_asked_for_while_another_runs_is_run_by_that_one_at_its_end(monkeypatch):
    """GIVEN a sweep running WHEN another is asked for meanwhile (the scheduler's wake-up for the
    next grant end) THEN the second is skipped (single-flight) but the running one sweeps again
    when it ends, so the work due meanwhile does not wait for the next periodic sweep."""
    real, calls = grant_sweep.sweep, []

    def sweep_with_a_wakeup_arriving(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            assert sweep_once() is None  # the wake-up's sweep, on another worker: the lease is held
        return real(**kwargs)

    monkeypatch.setattr(grant_sweep, "sweep", sweep_with_a_wakeup_arriving)
    assert sweep_once() is not None
    assert len(calls) == 2
    assert sweep_once() is not None  # and nothing left asked for: one sweep
    assert len(calls) == 3


@pytest.mark.django_db
def test_a_skipped_sweep_from_before_a_sweep_started_does_not_make_it_run_again(monkeypatch):
    assert lease_take(name=SWEEP_LEASE, holder="another-process", seconds=60)
    assert sweep_once() is None
    lease_release(name=SWEEP_LEASE, holder="another-process")
    calls = []
    real = grant_sweep.sweep
    monkeypatch.setattr(grant_sweep, "sweep", lambda **kw: calls.append(kw) or real(**kw))
    sweep_once()
    assert len(calls) == 1  # the mark predates this sweep, which covers what it asked for


def test_a_grant_end_is_swept_when_it_comes_with_no_periodic_sweep(transactional_db, celery_worker, worker_env,
                                                                   make_user, make_target, ldap_admin, tmp_path):
    """GIVEN a real worker and scheduler whose periodic sweep is an hour apart (and the broker up, so
    the watchdog's own revocations do not run) WHEN active grants reach their end THEN each
    membership is gone within seconds, removed by the sweeper (audited as such): the scheduler
    woke it for the end."""
    with background_workers_stopped(celery_worker):
        worker = CeleryWorker({**worker_env, "JITAD_SWEEP_INTERVAL": "3600"}, tmp_path / "w")
        worker.start()
        try:
            target = make_target()
            people = [make_user(f"wake{i}", groups=["admins"]) for i in range(2)]
            grants = [wait_state(services.request_create(requester=p, target=target, duration_minutes=30).grant.id,
                                 Grant.State.ACTIVE) for p in people]
            ends = [timezone.now() + timedelta(seconds=s) for s in (3, 5)]
            for g, end in zip(grants, ends):
                Grant.objects.filter(id=g.id).update(expires_at=end)
            for g in grants:
                assert ad_is_member(ldap_admin, target.group_dn, g.user_dn)
                done = wait_state(g.id, Grant.State.REVOKED, timeout=20)
                assert done.membership_removed is True
                assert not ad_is_member(ldap_admin, target.group_dn, g.user_dn)
            # The sweeper moved them (not a release, not the watchdog's fallback): claimed ahead of the end
            # at most (JITAD_REVOKE_LEAD_SECONDS), removed at or after it, never before.
            for g, end in zip(grants, ends):
                revoking = AuditEvent.objects.get(object_type="grant", object_id=str(g.id), action="grant.revoking")
                assert revoking.actor == "system:sweeper"
                assert revoking.at >= end - timedelta(seconds=settings.JITAD_REVOKE_LEAD_SECONDS + 0.05)
                revoked = AuditEvent.objects.get(object_type="grant", object_id=str(g.id), action="grant.revoked")
                assert revoked.at >= end and Grant.objects.get(id=g.id).revoked_at >= end
        finally:
            worker.stop()


@pytest.mark.django_db
def test_a_sweep_asked_for_just_as_the_running_one_gives_up_its_lease_is_not_lost(monkeypatch):
    """GIVEN a sweep about to give its lease up, having seen no new mark WHEN a wake-up's sweep
    arrives in between (it finds the lease still held, marks, tries once more, and gives up) THEN the
    first looks again after releasing, sees the mark and sweeps once more."""
    real_release, calls, arrivals = grant_sweep.lease_release, [], []
    real_sweep = grant_sweep.sweep

    def release_with_an_arrival(**kwargs):
        if not arrivals:
            arrivals.append(sweep_once())  # the lease is still held here: skipped, marked
        return real_release(**kwargs)

    monkeypatch.setattr(grant_sweep, "lease_release", release_with_an_arrival)
    monkeypatch.setattr(grant_sweep, "sweep", lambda **kw: calls.append(kw) or real_sweep(**kw))
    assert sweep_once() is not None
    assert arrivals == [None]
    assert len(calls) == 2


@pytest.mark.django_db
def test_a_wake_up_from_a_clock_a_little_ahead_still_ends_the_grant(monkeypatch):
    """GIVEN the scheduler's clock 1 s ahead of this worker's WHEN it wakes the sweep for a grant's end
    THEN the sweep takes that grant although its own clock has not reached the end yet; a wake-up
    claiming an end far ahead (a clock badly wrong) is not believed past 2 s."""
    sent, at = [], []
    monkeypatch.setattr(grant_sweep, "_enqueue_revoke", lambda ids, token, end=None: sent.append(list(ids))
                        or at.append(end))
    now = timezone.now()
    soon = _grant(Grant.State.ACTIVE, user="soon", expires_at=now + timedelta(seconds=1))
    later = _grant(Grant.State.ACTIVE, user="later", expires_at=now + timedelta(seconds=10))
    sweep_once(due=(now + timedelta(seconds=1)).timestamp())
    assert sent == [[soon.id]]
    assert at == [soon.expires_at]  # its removal runs at its end, not before, on the worker's clock
    sweep_once(due=(now + timedelta(seconds=10)).timestamp())
    assert sent == [[soon.id]]
    assert Grant.objects.get(id=later.id).state == Grant.State.ACTIVE


@pytest.mark.django_db
def test_the_wake_up_ahead_comes_the_lead_before_each_end_and_covers_it(settings):
    """GIVEN grants ending in 30 s and in 90 s, and a lead of 0.25 s WHEN the scheduler asks THEN the wake-up
    ahead is 0.25 s before the first end; asked again from that instant (the wake-up sent), it is before the
    second (the first is covered: no second wake-up for it); with no lead there is none."""
    settings.JITAD_REVOKE_LEAD_SECONDS = 0.25
    lead = timedelta(seconds=0.25)
    now = timezone.now()
    first = _grant(Grant.State.ACTIVE, user="a", expires_at=now + timedelta(seconds=30))
    second = _grant(Grant.State.ACTIVE, user="b", expires_at=now + timedelta(seconds=90))
    task, when = revoke_ahead_wakeup(after=now)
    assert (task, when) == (AHEAD_TASK, first.expires_at - lead)
    assert revoke_ahead_wakeup(after=when) == (AHEAD_TASK, second.expires_at - lead)
    settings.JITAD_REVOKE_LEAD_SECONDS = 0
    assert revoke_ahead_wakeup(after=now) is None


@pytest.mark.django_db
def test_an_end_claimed_ahead_is_sent_to_run_at_the_end_and_held_until_then(settings, monkeypatch):
    """GIVEN a grant ending in 0.2 s and one in 10 s WHEN the wake-up ahead runs (0.25 s lead) THEN the first is
    claimed (revoking, its lease past its end) and its removal sent to run at its end; the second is left
    alone; and while a sweep holds the sweep's lease, nothing is claimed ahead (the sweep at the end does it)."""
    settings.JITAD_REVOKE_LEAD_SECONDS = 0.25
    sent = []
    monkeypatch.setattr(grant_sweep, "_enqueue_revoke", lambda ids, token, end=None: sent.append((list(ids), end)))
    now = timezone.now()
    soon = _grant(Grant.State.ACTIVE, user="soon", expires_at=now + timedelta(seconds=0.2))
    later = _grant(Grant.State.ACTIVE, user="later", expires_at=now + timedelta(seconds=10))
    due = (soon.expires_at - timedelta(seconds=0.25)).timestamp()

    assert lease_take(name=SWEEP_LEASE, holder="a running sweep", seconds=30)
    assert revocations_claim_ahead(due=due) is None
    assert sent == [] and Grant.objects.get(id=soon.id).state == Grant.State.ACTIVE
    lease_release(name=SWEEP_LEASE, holder="a running sweep")

    assert revocations_claim_ahead(due=due) == {"revoke": 1, "revoke_messages": 1}
    assert sent == [([soon.id], soon.expires_at)]
    claimed = Grant.objects.get(id=soon.id)
    assert claimed.state == Grant.State.REVOKING and claimed.lease_until > soon.expires_at
    assert Grant.objects.get(id=later.id).state == Grant.State.ACTIVE


@pytest.mark.django_db
def test_a_revocation_message_marks_the_engines_revoking_pulse():
    """WHEN a revocation message runs (even one that finds its claim taken) THEN the engine's ``revoking`` pulse
    is marked: people's notice e-mails wait while it is recent (jitad.notifications)."""
    import uuid

    from jitad.engine.selectors import pulse_at
    from jitad.engine.services import REVOKING

    assert pulse_at(name=REVOKING) is None
    before = timezone.now()
    services.grants_revoke_execute(grant_ids=[], token=uuid.uuid4())
    assert pulse_at(name=REVOKING) >= before


@pytest.mark.django_db
def test_a_grant_asked_to_end_early_is_removed_at_once_never_held_for_its_natural_end(settings, monkeypatch):
    """GIVEN a grant released with an hour still to run, and a failed removal of another such grant due for a
    retry WHEN the sweep claims them THEN their removals are sent to run at once (no end to wait for); and claimed
    ahead beside a grant of the same group whose end comes within the lead, a released grant waits for that end
    at most, never for its own."""
    sent = []
    monkeypatch.setattr(grant_sweep, "_enqueue_revoke", lambda ids, token, end=None: sent.append((list(ids), end)))
    now = timezone.now()
    released = _grant(Grant.State.ACTIVE, user="rel", expires_at=now + timedelta(hours=1), revoke_requested_at=now)
    retried = _grant(Grant.State.REVOKE_FAILED, user="ret", expires_at=now + timedelta(hours=1),
                     revoke_requested_at=now - timedelta(minutes=1), next_attempt_at=now)
    sweep_once()
    assert sorted(sent) == sorted([([released.id], None), ([retried.id], None)])

    sent.clear()
    settings.JITAD_REVOKE_LEAD_SECONDS = 0.25
    ending = _grant(Grant.State.ACTIVE, user="end", expires_at=timezone.now() + timedelta(seconds=0.2))
    person = builders.user("early")
    req = AccessRequest.objects.create(requester=person, target=ending.target, policy=ending.request.policy,
                                       duration_minutes=60, state=AccessRequest.State.APPROVED)
    early = Grant.objects.create(request=req, user=person, target=ending.target, group_dn=ending.group_dn,
                                 state=Grant.State.ACTIVE, expires_at=timezone.now() + timedelta(hours=1),
                                 revoke_requested_at=timezone.now())
    revocations_claim_ahead(due=(ending.expires_at - timedelta(seconds=0.25)).timestamp())
    ((ids, end),) = sent
    assert sorted(ids) == sorted([ending.id, early.id]) and end == ending.expires_at


@pytest.mark.django_db
def test_a_sweep_that_arrives_while_ends_are_claimed_ahead_is_not_lost(settings, monkeypatch):
    """GIVEN the claim ahead holding the sweep's lease WHEN a sweep arrives meanwhile (it finds the lease held,
    leaves its mark and gives up) THEN, the claim ahead done, a sweep is sent at once."""
    sent = []
    monkeypatch.setattr(grant_sweep.queue, "enqueue", lambda name, *args, **kw: sent.append(name) or True)
    real = grant_sweep._revocations_claim

    def with_an_arrival(*args, **kwargs):
        assert sweep_once() is None  # skipped: the lease is held here, its mark left
        return real(*args, **kwargs)

    monkeypatch.setattr(grant_sweep, "_revocations_claim", with_an_arrival)
    revocations_claim_ahead(due=timezone.now().timestamp())
    assert sent == [SWEEP_TASK]
