"""The grant engine's watchdog checks: sweeps that stopped, revocations running late, failures resolved.

They run on the engine's ``watch`` signal, in whichever live jitad process holds the
watch lease, so they do not depend on the scheduler or on any one worker being alive.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Min, Q
from django.urls import reverse
from django.utils import timezone

from jitad.engine import selectors as engine
from jitad.engine import services as engine_services
from jitad.humantime import when
from jitad.notifications.services import condition_raise, condition_resolve

from ..models import Grant
from .grant_failures import failed_conditions_resolve

log = logging.getLogger(__name__)
GrantState = Grant.State

LATE = "grants.revocation_late"
SWEEP_STALLED = "engine.sweep_stalled"
WATCHED_SINCE = "sweep.watched_since"
# Not yet revoked: anything past its end (or asked to end) in these states is late.
UNREVOKED = (GrantState.APPROVED, GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED,
             GrantState.GRANT_FAILED, GrantState.REVOKING, GrantState.REVOKE_FAILED)


def watch_grants(**kwargs) -> None:
    """The engine's watch signal: every grants check, each on its own."""
    for check in (sweep_check, lateness_check, failed_conditions_resolve):
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


def lateness_check() -> None:
    """Grants past their end by more than JITAD_REVOCATION_SLA_SECONDS: one alert with the count and the oldest."""
    now = timezone.now()
    sla = settings.JITAD_REVOCATION_SLA_SECONDS
    cutoff = now - timedelta(seconds=sla)
    late = Grant.objects.filter(Q(expires_at__lt=cutoff) | Q(revoke_requested_at__lt=cutoff), state__in=UNREVOKED)
    subject = f"Revocations are late: grants past their end by more than {sla:g} s"
    count = late.count()
    if not count:
        condition_resolve(key=LATE, event=f"{LATE}.resolved", subject=subject,
                          body="Every grant past its end is revoked.")
        return
    firsts = late.aggregate(expired=Min("expires_at"), asked=Min("revoke_requested_at"))
    due = min(t for t in (firsts["expired"], firsts["asked"]) if t is not None)
    oldest = late.filter(Q(expires_at=due) | Q(revoke_requested_at=due)).select_related("user", "target").first()
    by_state = {s: late.filter(state=s).count() for s in UNREVOKED}
    link = settings.JITAD_BASE_URL + reverse("admin:elevation_grant_changelist")
    condition_raise(
        key=LATE, event=LATE, subject=subject, link=link,
        body=(f"{count} grant(s) should have ended more than {sla:g} s ago and still hold (or may hold) their "
              f"membership. The oldest is {(now - due).total_seconds():.0f} s late: grant #{oldest.pk}, "
              f"{oldest.user.get_username()} on {oldest.target.name}, {oldest.state}"
              + (f", last error: {oldest.last_error[:300]}" if oldest.last_error else "") + ".\n"
              + "By state: " + ", ".join(f"{s} {n}" for s, n in by_state.items() if n) + ".\n"
              "jitad keeps working on them; check the domain controllers, the workers and the scheduler."),
    )


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
