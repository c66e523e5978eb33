"""Grants' failed attempts: record and schedule the retry, or mark the grant failed and alert once per cause.

A batch that runs out of attempts raises one alert per cause (``grant.<state>:<error
class>``), not one per grant; the alert resolves when no grant is left in that failed
state. A group jitad does not own raises its own condition instead.
"""
import logging
import uuid

from jitad import directory
from jitad.audit.services import audit_record_many
from jitad.engine import claims
from jitad.notifications.models import Notification
from jitad.notifications.services import condition_raise, condition_resolve, conditions_open

from ..models import Grant
from .grant_work import _admin_link, _entry, _grants_link
from .notices import notice_grant_not_applied
from .unmanaged import group_not_managed_raise, not_managed_conditions_resolve

log = logging.getLogger(__name__)
GrantState = Grant.State


def _attempt_failed(grants: list[Grant], token: uuid.UUID, error: directory.DirectoryError, *, phase: str) -> None:
    """Record a failed attempt on the grants still claimed with ``token`` (``jitad.engine.claims.attempt_failed``).

    The engine counts the attempt, keeps the error, schedules the retry with its backoff and
    drops the claim. Past the last attempt, or on a permanent error, the grant moves to
    ``grant_failed`` (``phase`` "grant") or ``revoke_failed`` (``phase`` "revoke"), and the
    change is audited and alerted once per cause; every other failed attempt is audited as
    ``grant.attempt_failed``.
    """
    message = f"{type(error).__name__}: {error}"[: claims.ERROR_MAX]
    not_managed = isinstance(error, directory.DirectoryNotManaged)

    def mark(g: Grant, exhausted: bool, now) -> list[str]:
        if phase == "grant" and exhausted:
            g.state, g.retryable = GrantState.GRANT_FAILED, error.transient
        elif phase == "revoke" and exhausted:
            g.state = GrantState.REVOKE_FAILED
        return ["state", "retryable"]

    def report(failures: list[claims.Failed]) -> None:
        # Newest grant first, the order the grants are listed in everywhere else (Grant.Meta).
        failures = sorted(failures, key=lambda f: f.row.created_at, reverse=True)
        audit_record_many([
            _entry(f.row, actor="system:engine",
                   action=f"grant.{f.row.state}" if f.row.state != f.before else "grant.attempt_failed",
                   before=f.before, after=f.row.state, reason=message, attempts=f.row.attempts,
                   transient=error.transient)
            for f in failures
        ])
        alerts = [f.row for f in failures if f.row.state != f.before]
        if not_managed:
            _not_managed_raise(error, grants)
        elif alerts:
            _alert_failed_wave(alerts, phase=phase, error=error, message=message)
        if phase == "grant":
            for g in alerts:
                notice_grant_not_applied(grant=g)

    recorded = claims.attempt_failed(
        Grant.objects.select_related("user", "target"), [g.id for g in grants], token,
        error=message, transient=error.transient, mark=mark, report=report,
    )
    if not recorded and not_managed:  # the seam refused the group, even if another execution holds these grants now
        _not_managed_raise(error, grants)
    log.warning("%s attempt failed for %d grant(s): %s", phase, len(grants), message)


def _not_managed_raise(error: directory.DirectoryNotManaged, grants: list[Grant]) -> None:
    """A group jitad does not own: one condition per group, raised on every refusal (it only
    counts while open), instead of a wave alert per batch of grants."""
    group_not_managed_raise(group_dn=error.dn, error=error, grant_ids=[g.id for g in grants], by="engine")


FAILED_LISTED = 20


def _alert_failed_wave(grants: list[Grant], *, phase: str, error: directory.DirectoryError, message: str) -> None:
    """One alert per cause for a batch that ran out of attempts, not one per grant.

    The alert opens the condition ``grant.<state>:<error class>``; further batches failing
    for the same cause while it is open only count (and remind now and then). It resolves
    when no grant is left in that failed state (``failed_conditions_resolve``).
    """
    state = grants[0].state
    verb = "add" if phase == "grant" else "remove"
    cause = type(error).__name__
    shown = grants[:FAILED_LISTED]
    lines = [f"  #{g.pk} {g.user.get_username()} on {g.target.name} ({g.group_dn})" for g in shown]
    if len(grants) > len(shown):
        lines.append(f"  ... and {len(grants) - len(shown)} more (admin → Grants, state {state})")
    first = grants[0]
    what = (f"{first.user.get_username()} {'to' if verb == 'add' else 'from'} {first.target.name} (grant #{first.pk})"
            if len(grants) == 1 else f"{len(grants)} grants")
    condition_raise(
        key=f"grant.{state}:{cause}",
        event=f"grant.{state}",
        severity=Notification.Severity.CRITICAL,
        subject=f"jitad could not {verb} {what}: {cause}",
        body=(
            f"{len(grants)} grant(s) are {state} after their last attempt. Last error: {message}\n"
            + "\n".join(lines) + "\n"
            + ("jitad keeps retrying the removals and says when every one is done; check the domain controllers "
               "and jitad's bind account." if phase == "revoke" else "The requesters do not have the access.")
        ),
        link=_admin_link(first) if len(grants) == 1 else _grants_link(state),
    )


def failed_conditions_resolve() -> None:
    """Resolve the failure alerts of a state no grant is in any more (one "Resolved" per cause)."""
    not_managed_conditions_resolve()
    for state, event, what, done in (
        (GrantState.REVOKE_FAILED, "grant.revoke_recovered", "revocations failed",
         "Every failed revocation is done: the memberships are verified gone."),
        (GrantState.GRANT_FAILED, "grant.recovered", "grants failed", "No grant is left failed (applied, or ended)."),
    ):
        open_ = conditions_open(prefix=f"grant.{state}:")
        if open_ and not Grant.objects.filter(state=state).exists():
            for c in open_:
                cause = c.key.split(":", 1)[1]
                condition_resolve(key=c.key, event=event, subject=f"{what} with {cause}",
                                  body=f"{done}\nFirst alerted: {c.subject}")
