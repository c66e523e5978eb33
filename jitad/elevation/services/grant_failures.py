"""Grants' failed attempts: record and schedule the retry, or mark the grant failed and alert once per cause.

A batch that runs out of attempts raises one alert per cause (``grant.<state>:<error
class>``), not one per grant; the alert resolves when no grant is left in that failed
state. A group jitad does not own raises its own condition instead.
"""
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_record_many
from jitad.engine.retry import backoff_seconds
from jitad.notifications.models import Notification
from jitad.notifications.services import condition_raise, condition_resolve, conditions_open

from ..models import Grant
from .grant_work import _admin_link, _entry, _grants_link
from .notices import notice_grant_not_applied
from .unmanaged import group_not_managed_raise, not_managed_conditions_resolve

log = logging.getLogger(__name__)
GrantState = Grant.State


def _unexpected(e: Exception) -> directory.DirectoryError:
    """Wrap a non-directory error as a permanent failure, so it is recorded and alerted."""
    wrapped = directory.DirectoryError(f"unexpected {type(e).__name__}: {e}")
    wrapped.__cause__ = e
    return wrapped


def _attempt_failed(grants: list[Grant], token: uuid.UUID, error: directory.DirectoryError, *, phase: str) -> None:
    """Record a failed attempt on grants we hold; schedule the retry or mark failed and alert."""
    now = timezone.now()
    message = f"{type(error).__name__}: {error}"[:2000]
    entries, alerts = [], []
    with transaction.atomic():
        for g in Grant.objects.select_for_update(of=("self",)).select_related("user", "target").filter(
            id__in=[g.id for g in grants], claim_token=token
        ):
            before = g.state
            g.attempts += 1
            g.last_error = message
            exhausted = not error.transient or g.attempts >= settings.JITAD_RETRY_MAX_ATTEMPTS
            if phase == "grant" and exhausted:
                g.state, g.retryable = GrantState.GRANT_FAILED, error.transient
            elif phase == "revoke" and exhausted:
                g.state = GrantState.REVOKE_FAILED
            g.next_attempt_at = now + timedelta(seconds=backoff_seconds(g.attempts, failed=exhausted))
            g.claim_token = g.lease_until = None
            g.save(update_fields=["attempts", "last_error", "state", "retryable", "next_attempt_at", "claim_token", "lease_until"])
            action = f"grant.{g.state}" if g.state != before else "grant.attempt_failed"
            entries.append(_entry(g, actor="system:engine", action=action, before=before, after=g.state,
                                  reason=message, attempts=g.attempts, transient=error.transient))
            if g.state != before:
                alerts.append(g)
        audit_record_many(entries)
        if isinstance(error, directory.DirectoryNotManaged):
            # A group jitad does not own: one condition per group, raised on every refusal
            # (it only counts while open), instead of a wave alert per batch of grants.
            group_not_managed_raise(group_dn=error.dn, error=error, grant_ids=[g.id for g in grants], by="engine")
        elif alerts:
            _alert_failed_wave(alerts, phase=phase, error=error, message=message)
        if phase == "grant":
            for g in alerts:
                notice_grant_not_applied(grant=g)
    log.warning("%s attempt failed for %d grant(s): %s", phase, len(grants), message)


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
