"""The watchdog: a dead scheduler, stopped sweeps and late revocations are alerted once, and resolved."""
import time

from django.conf import settings

from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.engine.selectors import lease_state
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for

from ..elevation.helpers import ad_is_member, expire_now, wait_state

RAISED = ("engine.process_dead", "engine.no_scheduler", "engine.sweep_stalled", "grants.revocation_late")
RESOLVED = ("engine.process_back", "engine.no_scheduler.resolved", "engine.sweep_stalled.resolved",
            "grants.revocation_late.resolved")


def _count(event: str) -> int:
    return Notification.objects.filter(event=event).count()


def test_the_only_scheduler_dies_the_worker_alerts_and_a_new_one_resumes(nodes, make_user, make_target, ldap_admin,
                                                                        alert_sink):
    """GIVEN one engine worker and one scheduler (as a site that ignored the advice to run
    several), and an active grant WHEN the scheduler is SIGKILLed and left dead and the grant
    expires THEN nothing sweeps, and the worker's watchdog alerts, once each however many runs
    see it: the scheduler's death, no scheduler running, sweeps stopped, a grant past its end
    (with the count and the oldest) WHEN a scheduler starts again THEN the grant is revoked
    and each of the four is resolved once."""
    env = nodes.env()
    nodes.worker(env)
    scheduler = nodes.scheduler(env)
    target = make_target()
    user = make_user("late", groups=("admins",))
    grant = wait_state(services.request_create(requester=user, target=target, duration_minutes=30).grant.id,
                       Grant.State.ACTIVE)

    wait_for(lambda: lease_state(name="scheduler").held, timeout=30, message="the scheduler to lead")
    scheduler.kill()
    expire_now(grant.id)
    for event in RAISED:
        wait_for(lambda event=event: _count(event), timeout=60, message=f"a {event} alert")
    late = Notification.objects.get(event="grants.revocation_late")
    assert "1 grant(s)" in late.body and f"grant #{grant.id}" in late.body
    wait_for(lambda: Notification.objects.filter(event__in=RAISED, deliveries__state="sent").count() == 4, timeout=30,
             message="the four alerts delivered by the worker")
    assert {"jitad scheduler scheduler@" in m.get("title", "") for m in alert_sink.messages} >= {True}
    time.sleep(3 * settings.JITAD_WATCH_INTERVAL)  # several more watchdog runs see the same conditions
    assert Grant.objects.get(id=grant.id).state == Grant.State.ACTIVE  # truly nobody sweeps
    assert [_count(e) for e in RAISED] == [1, 1, 1, 1]  # once each, not once per watchdog run

    nodes.scheduler(env)
    wait_state(grant.id, Grant.State.REVOKED, timeout=60)
    assert not ad_is_member(ldap_admin, target.group_dn, Grant.objects.get(id=grant.id).user_dn)
    for event in RESOLVED:
        wait_for(lambda event=event: _count(event), timeout=60, message=f"a {event} alert")
    assert [_count(e) for e in RAISED] == [1, 1, 1, 1]
    assert [_count(e) for e in RESOLVED] == [1, 1, 1, 1]


def test_a_scheduler_that_dies_before_its_first_sweep_is_still_noticed(db, settings):
    """GIVEN a database on which no sweep ever ran to its end WHEN the watchdog looks and, later
    than the stale limit, looks again THEN sweeps are alerted as stopped (counted from its
    first look, not skipped for want of a last sweep)."""
    from jitad.elevation.services import watch

    settings.JITAD_SWEEP_STALE_SECONDS = 0.2
    watch.sweep_check()
    assert _count("engine.sweep_stalled") == 0  # the first look only starts the clock
    time.sleep(0.5)
    watch.sweep_check()
    alert = Notification.objects.get(event="engine.sweep_stalled")
    assert "No sweep has run to its end" in alert.body


def test_a_reconcile_or_group_watch_that_stopped_is_alerted_once_and_resolved(db, settings, monkeypatch):
    """GIVEN the watchdog's first look on a fresh database WHEN, past the stale limit, the periodic reconcile
    has run but the group watch has not THEN one alert names the group watch (not the reconcile), however often
    the watchdog looks WHEN both run again THEN it is resolved, once."""
    from jitad.elevation.services import group_watcher, reconciler, watch
    from jitad.engine.services import pulse_mark

    monkeypatch.setattr(watch, "STALE_FLOOR_SECONDS", 0.2)
    settings.JITAD_RECONCILE_INTERVAL, settings.JITAD_GROUP_WATCH_INTERVAL = 0.05, 0.01
    watch.out_of_band_check()
    assert _count("reconcile.stalled") == 0  # the first look only starts the clock
    time.sleep(0.3)
    pulse_mark(name=reconciler.RECONCILED)
    for _ in range(3):
        watch.out_of_band_check()
    alert = Notification.objects.get(event="reconcile.stalled")
    assert "group watch" in alert.body and "periodic reconcile" not in alert.body
    assert "has not run to its end since the watchdog started" in alert.body

    pulse_mark(name=reconciler.RECONCILED)
    pulse_mark(name=group_watcher.WATCHED)
    watch.out_of_band_check()
    watch.out_of_band_check()
    assert _count("reconcile.stalled.resolved") == 1 and _count("reconcile.stalled") == 1


def test_a_stopped_reconcile_is_not_alerted_while_its_cause_is_or_a_group_watch_that_is_off(db, settings,
                                                                                             monkeypatch):
    """GIVEN no reconcile for longer than the limit and the group watch off WHEN no DC answers (alerted already)
    THEN the watchdog raises nothing more WHEN a DC answers THEN the stopped reconcile is alerted, and the
    group watch, being off, is not named."""
    from jitad.elevation.services import watch
    from jitad.health.checks import UNREACHABLE, directory_unreachable_raise
    from jitad.notifications.services import condition_resolve

    monkeypatch.setattr(watch, "STALE_FLOOR_SECONDS", 0.2)
    settings.JITAD_RECONCILE_INTERVAL, settings.JITAD_GROUP_WATCH_INTERVAL = 0.05, 0
    watch.out_of_band_check()
    time.sleep(0.3)
    directory_unreachable_raise(detail="no DC answered")
    watch.out_of_band_check()
    assert _count("reconcile.stalled") == 0
    condition_resolve(key=UNREACHABLE, event=f"{UNREACHABLE}.resolved", subject="", body="")
    watch.out_of_band_check()
    alert = Notification.objects.get(event="reconcile.stalled")
    assert "periodic reconcile" in alert.body and "group watch" not in alert.body


def test_late_revocations_are_counted_by_state_with_the_oldest_named(db, settings, django_user_model):
    """GIVEN grants past their end by more than the limit in two states, one of them asked to end earlier
    than any expired, beside a grant revoked long ago and one still running WHEN the watchdog looks THEN one
    alert counts the late ones by state and names the oldest (the one asked to end) WHEN they are revoked
    THEN it is resolved."""
    from datetime import timedelta

    from django.utils import timezone

    from jitad.elevation.models import AccessRequest, Policy, Target
    from jitad.elevation.services import watch

    settings.JITAD_REVOCATION_SLA_SECONDS = 60
    user = django_user_model.objects.create_user("lately")
    target = Target.objects.create(name="LATE1", group_dn="CN=late,OU=JIT,DC=x")
    policy = Policy.objects.create(name="late", approval_mode="auto", eligible_users=["lately"])
    now = timezone.now()

    def grant(state, ends_in, **more):
        req = AccessRequest.objects.create(requester=user, target=target, policy=policy, duration_minutes=5)
        return Grant.objects.create(request=req, user=user, target=target, group_dn=target.group_dn, state=state,
                                    expires_at=now + timedelta(seconds=ends_in), **more)

    grant(Grant.State.REVOKED, -3600, revoked_at=now - timedelta(seconds=3500))
    grant(Grant.State.ACTIVE, 3600)
    late = [grant(Grant.State.REVOKING, -120), grant(Grant.State.ACTIVE, -200),
            grant(Grant.State.ACTIVE, 1800, revoke_requested_at=now - timedelta(seconds=300))]
    watch.lateness_check()
    alert = Notification.objects.get(event="grants.revocation_late")
    assert "3 grant(s)" in alert.body
    assert "The oldest is 30" in alert.body  # 300 s, and the moments the test took
    assert f" s late: grant #{late[2].id}, lately on LATE1, active." in alert.body
    assert "By state: active 2, revoking 1." in alert.body

    Grant.objects.filter(id__in=[g.id for g in late]).update(state=Grant.State.REVOKED, revoked_at=now)
    watch.lateness_check()
    assert _count("grants.revocation_late.resolved") == 1 and _count("grants.revocation_late") == 1
