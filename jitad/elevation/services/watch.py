"""The grant engine's watchdog checks: sweeps that stopped, revocations running late, out-of-band checks that
stopped, failures resolved.

They run on the engine's ``watch`` signal, in whichever live jitad process holds the
watch lease, so they do not depend on the scheduler or on any one worker being alive.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.urls import reverse
from django.utils import timezone

from jitad.engine import selectors as engine
from jitad.engine import services as engine_services
from jitad.health.checks import UNREACHABLE
from jitad.humantime import when
from jitad.notifications.services import condition_raise, condition_resolve, conditions_open

from ..models import Grant
from .grant_failures import failed_conditions_resolve
from .group_watcher import WATCHED
from .reconciler import CANNOT_RUN, RECONCILED

log = logging.getLogger(__name__)
GrantState = Grant.State

LATE = "grants.revocation_late"
SWEEP_STALLED = "engine.sweep_stalled"
WATCHED_SINCE = "sweep.watched_since"
OUT_OF_BAND_STALLED = "reconcile.stalled"
OUT_OF_BAND_SINCE = "reconcile.watched_since"
STALE_FLOOR_SECONDS = 120.0  # a reconcile or group watch is stalled after three (ten) intervals, never sooner than this
# Not yet revoked: anything past its end (or asked to end) in these states is late.
UNREVOKED = (GrantState.APPROVED, GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED,
             GrantState.GRANT_FAILED, GrantState.REVOKING, GrantState.REVOKE_FAILED)


def watch_grants(**kwargs) -> None:
    """The engine's watch signal: every grants check, each on its own."""
    for check in (sweep_check, lateness_check, out_of_band_check, failed_conditions_resolve):
        try:
            check()
        except Exception:  # noqa: BLE001 - one broken check must not hide the others
            log.exception("watchdog check %s failed", check.__name__)


def sweep_check() -> None:
    """The sweep has not run to its end for JITAD_SWEEP_STALE_SECONDS: alert; resolved when it runs again."""
    at = engine.pulse_at(name="sweep")
    if at is not None:
        age = (timezone.now() - at).total_seconds()
        ended = f"The last sweep ended {age:.0f} s ago (at {when(at)})"
    else:
        # Never swept to its end on this database: count from when the watchdog first looked,
        # so a scheduler that dies before its first sweep is still noticed.
        since = engine.pulse_at(name=WATCHED_SINCE)
        if since is None:
            engine_services.pulse_mark(name=WATCHED_SINCE)
            return
        age = (timezone.now() - since).total_seconds()
        ended = f"No sweep has run to its end since the watchdog started {age:.0f} s ago"
    subject = "Sweeps have stopped: expired grants are not being revoked"
    if age > settings.JITAD_SWEEP_STALE_SECONDS:
        alive = engine.heartbeats_alive(within=timedelta(seconds=settings.JITAD_PROCESS_SILENT_SECONDS))
        condition_raise(
            key=SWEEP_STALLED, event=SWEEP_STALLED, subject=subject,
            body=(f"{ended}; it should run every "
                  f"{settings.JITAD_SWEEP_INTERVAL:g} s. Processes reporting: "
                  + (", ".join(f"{h.role} {h.node}" for h in alive) or "none")
                  + ".\nCheck that a scheduler runs (celery worker -B or celery beat), the broker answers and an "
                    "engine worker consumes the 'celery' queue."),
        )
    else:
        condition_resolve(key=SWEEP_STALLED, event=f"{SWEEP_STALLED}.resolved", subject=subject,
                          body=f"Sweeps run again (the last one {age:.1f} s ago).")


def out_of_band_check() -> None:
    """The periodic reconcile, or the group watch when it is on, has not run to its end for long: alert once;
    resolved when both run again.

    Stalled: no full reconcile for three JITAD_RECONCILE_INTERVALs, or no group-watch run for ten
    JITAD_GROUP_WATCH_INTERVALs (past a run that died holding the watch's lease), never sooner than
    STALE_FLOOR_SECONDS; counted from the watchdog's first look on a database where it never ran.
    Nothing is raised while the cause is alerted already (no DC answers, the reconciler cannot bind,
    the sweeps stopped, so the scheduler is gone): one cause, one page.
    """
    now = timezone.now()
    since = engine.pulse_at(name=OUT_OF_BAND_SINCE)
    if since is None:
        engine_services.pulse_mark(name=OUT_OF_BAND_SINCE)
        return
    checks = [("periodic reconcile", RECONCILED, settings.JITAD_RECONCILE_INTERVAL, 3)]
    if settings.JITAD_GROUP_WATCH_INTERVAL > 0:
        checks.append(("group watch", WATCHED, settings.JITAD_GROUP_WATCH_INTERVAL, 10))
    stalled = []
    for what, pulse, interval, intervals in checks:
        at = engine.pulse_at(name=pulse)
        age = (now - (at or since)).total_seconds()
        if age > max(STALE_FLOOR_SECONDS, intervals * interval):
            stalled.append(f"the {what} (every {interval:g} s) "
                           + (f"last ran to its end {age:.0f} s ago, at {when(at)}" if at else
                              f"has not run to its end since the watchdog started {age:.0f} s ago"))
    subject = "Out-of-band admins are not being checked: the reconciler has stopped"
    if not stalled:
        condition_resolve(key=OUT_OF_BAND_STALLED, event=f"{OUT_OF_BAND_STALLED}.resolved", subject=subject,
                          body="The periodic reconcile and the group watch run again.")
        return
    if any(conditions_open(prefix=key) for key in (UNREACHABLE, CANNOT_RUN, SWEEP_STALLED)):
        return  # its cause is alerted already
    condition_raise(
        key=OUT_OF_BAND_STALLED, event=OUT_OF_BAND_STALLED, subject=subject,
        body=(_sentence("; ".join(stalled)) + ". A member added to a managed group outside jitad stays until "
              "they run again. Sweeps run and a DC answers, so look at the worker's log for the task "
              "jitad.elevation.reconcile or jitad.elevation.group_watch failing, and at the engine's queue "
              "('celery') for a backlog (docs/reconciler.md)."),
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def lateness_check() -> None:
    """Grants past their end by more than JITAD_REVOCATION_SLA_SECONDS: one alert with the count and the oldest.

    Cheap however many grants are late (a mass expiry the DC is slow with): one grouped read of the live
    grants, then the oldest by the (state, expires_at) index, a row each.
    """
    now = timezone.now()
    sla = settings.JITAD_REVOCATION_SLA_SECONDS
    cutoff = now - timedelta(seconds=sla)
    late = Grant.objects.filter(Q(expires_at__lt=cutoff) | Q(revoke_requested_at__lt=cutoff), state__in=UNREVOKED)
    per_state = list(late.order_by().values("state").annotate(n=Count("id"), expired=Min("expires_at"),
                                                            asked=Min("revoke_requested_at")))
    subject = f"Revocations are late: grants past their end by more than {sla:g} s"
    count = sum(row["n"] for row in per_state)
    if not count:
        condition_resolve(key=LATE, event=f"{LATE}.resolved", subject=subject,
                          body="Every grant past its end is revoked.")
        return
    due = min(t for row in per_state for t in (row["expired"], row["asked"]) if t is not None)
    oldest = _late_oldest(due)
    by_state = {row["state"]: row["n"] for row in per_state}
    link = settings.JITAD_BASE_URL + reverse("admin:elevation_grant_changelist")
    condition_raise(
        key=LATE, event=LATE, subject=subject, link=link,
        body=(f"{count} grant(s) should have ended more than {sla:g} s ago and still hold (or may hold) their "
              f"membership. The oldest is {(now - due).total_seconds():.0f} s late"
              + (f": grant #{oldest.pk}, {oldest.user.get_username()} on {oldest.target.name}, {oldest.state}"
                 if oldest else "")
              + (f", last error: {oldest.last_error[:300]}" if oldest and oldest.last_error else "") + ".\n"
              + "By state: " + ", ".join(f"{s} {by_state[s]}" for s in UNREVOKED if by_state.get(s)) + ".\n"
              "jitad keeps working on them; check the domain controllers, the workers and the scheduler."),
    )


def _late_oldest(due) -> Grant | None:
    """A late grant whose end (or asked end) is ``due``: by its state and end (an index entry), no sort of the rest.
    None if it was revoked meanwhile."""
    for state in UNREVOKED:
        found = list(Grant.objects.filter(state=state, expires_at=due).select_related("user", "target").order_by()[:1])
        if found:
            return found[0]
    return Grant.objects.filter(state__in=UNREVOKED, revoke_requested_at=due).select_related(
        "user", "target").order_by().first()


def grants_retry_now(**kwargs) -> int:
    """A DC answers again: every revocation and apply waiting out a backoff is due now."""
    now = timezone.now()
    waiting = Q(next_attempt_at__gt=now)
    n = Grant.objects.filter(waiting, state__in=[GrantState.REVOKING, GrantState.REVOKE_FAILED]).update(next_attempt_at=now)
    n += Grant.objects.filter(waiting, state__in=[GrantState.GRANTING, GrantState.GRANT_FAILED], retryable=True,
                              expires_at__gt=now).update(next_attempt_at=now)
    if n:
        log.info("a domain controller answers again: %d grant(s) retried now", n)
    return n
