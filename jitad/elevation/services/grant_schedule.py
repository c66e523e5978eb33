"""Scheduled grants: approved, holding no membership yet, waiting for their start or for a one-at-a-time target.

A ``scheduled`` grant has nothing in AD and is not live: it never keeps another grant's
membership, and the reconciler never counts it as backing one. The sweep starts it when
``starts_at`` has come and, on an exclusive target, nobody else holds the target (first
come, first served), moving it to ``granting`` like any new grant. One that ends before it
starts (released, revoked, or its fixed end passed) is closed here without touching AD.

Whether a grant may start on an exclusive target is decided with the target's row locked
(``select_for_update``), here and in ``grant_create_from``, so two grants never both start.
"""
import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.audit.services import audit_record_many
from jitad.engine import claims

from ..models import Grant, Target
from ..selectors.grants import exclusive_live_holder, grant_clock_fixed
from .grant_work import _enqueue_apply, _entry
from .notices_schedule import notice_grant_started_after_wait, notice_grant_waiting, notices_grants_ended_unstarted

log = logging.getLogger(__name__)
GrantState = Grant.State


def grant_end_unstarted(grants: list[Grant], *, actor: str, now=None) -> None:
    """Close scheduled grants that end before they start: revoked, nothing in AD; audited and told.

    The caller holds the rows locked (or claimed) in its transaction; ``revoke_reason`` is set
    on each (empty means its time ran out). ``membership_removed`` stays empty: there was none.
    """
    now = now or timezone.now()
    entries = []
    for g in grants:
        g.revoke_reason = g.revoke_reason or Grant.RevokeReason.EXPIRED
        g.state, g.revoked_at, g.claim_token, g.lease_until = GrantState.REVOKED, now, None, None
        g.save(update_fields=["state", "revoked_at", "claim_token", "lease_until", "revoke_reason"])
        entries.append(_entry(g, actor=actor, action="grant.revoked", before=GrantState.SCHEDULED,
                              after=GrantState.REVOKED, reason=g.revoke_comment or g.revoke_reason,
                              never_started=True, membership_removed=None))
    audit_record_many(entries)
    notices_grants_ended_unstarted(grants=grants)


def scheduled_end_due(now, *, limit: int) -> int:
    """End the scheduled grants asked to end, or whose fixed end passed before they could start."""
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    fixed_end_passed = Q(expires_at__lte=now, request__starts_at__isnull=False) & ~Q(
        request__policy__schedule_clock="approval")
    qs = (Grant.objects.filter(free, state=GrantState.SCHEDULED)
          .filter(Q(revoke_requested_at__isnull=False) | fixed_end_passed)
          .select_related("user", "target").order_by("expires_at"))
    with transaction.atomic():
        rows = list(qs.select_for_update(skip_locked=True, of=("self",))[:limit])
        if rows:
            grant_end_unstarted(rows, actor="system:sweeper", now=now)
    return len(rows)


def _waited(g: Grant) -> bool:
    """Whether ``g`` had to wait for a one-at-a-time target (its waiting was audited)."""
    return AuditEvent.objects.filter(object_type="grant", object_id=str(g.pk), action="grant.waiting").exists()


def grant_wait_record(g: Grant, holder: Grant, *, actor: str) -> None:
    """Audit (and tell the requester) that ``g`` waits for ``holder`` on an exclusive target."""
    audit_record_many([_entry(g, actor=actor, action="grant.waiting", before=g.state, after=g.state,
                              holder=holder.user.get_username(), holder_grant=holder.pk,
                              held_until=holder.expires_at.isoformat())])
    notice_grant_waiting(grant=g, holder=holder)


def _start(g: Grant, now, *, waited: bool) -> uuid.UUID | None:
    """Move one locked scheduled grant to granting (or end it if its fixed end has passed); caller's transaction."""
    minutes = g.request.duration_minutes
    fixed = grant_clock_fixed(g)
    if fixed and g.expires_at <= now:
        grant_end_unstarted([g], actor="system:sweeper", now=now)
        return None
    if not fixed:  # the whole duration, counted from now: the moment it starts, not the sweep's earlier clock
        # (on an exclusive target the holder's revocation may have been recorded after the sweep began)
        start = max(now, timezone.now())
        g.starts_at, g.expires_at = start, start + timedelta(minutes=minutes)
    token = uuid.uuid4()
    g.state, g.claim_token, g.lease_until, g.attempts, g.next_attempt_at = (
        GrantState.GRANTING, token, claims.lease_until(now), 0, None)
    g.save(update_fields=["state", "starts_at", "expires_at", "claim_token", "lease_until", "attempts",
                          "next_attempt_at"])
    audit_record_many([
        _entry(g, actor="system:sweeper", action="grant.started", before=GrantState.SCHEDULED,
               after=GrantState.APPROVED, starts_at=g.starts_at.isoformat(), expires_at=g.expires_at.isoformat(),
               clock="scheduled_start" if fixed else "from_start", waited=waited),
        _entry(g, actor="system:engine", action="grant.granting", before=GrantState.APPROVED, after=GrantState.GRANTING),
    ])
    if waited:
        notice_grant_started_after_wait(grant=g)
    transaction.on_commit(lambda: _enqueue_apply(g.id, token))
    return token


def _due(now):
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return (Grant.objects.filter(free, state=GrantState.SCHEDULED, starts_at__lte=now, revoke_requested_at__isnull=True)
            .select_related("user", "target", "request__policy"))


def scheduled_start_due(now, *, limit: int) -> int:
    """Start the scheduled grants whose start has come, oldest first; on an exclusive target, only the
    first in line, and only when nobody else holds it. Returns how many started."""
    started = 0
    with transaction.atomic():  # targets anyone may hold together: no lock on the target needed
        rows = list(_due(now).filter(target__exclusive="").order_by("starts_at", "id")
                    .select_for_update(skip_locked=True, of=("self",))[:limit])
        for g in rows:
            started += _start(g, now, waited=False) is not None
    target_ids = list(_due(now).exclude(target__exclusive="").order_by().values_list("target_id", flat=True).distinct())
    for target_id in target_ids[:limit]:
        started += scheduled_start_exclusive(target_id=target_id, now=now)
    return started


def scheduled_start_exclusive(*, target_id: int, now=None) -> int:
    """On one exclusive target: start the first scheduled grant in line if nobody else holds the target.

    The target's row is locked while this is decided (as in ``grant_create_from``). A grant whose
    start came while someone else held the target is audited as waiting, once, and its requester told.
    """
    now = now or timezone.now()
    with transaction.atomic():
        target = Target.objects.select_for_update().filter(pk=target_id).first()
        if target is None:
            return 0
        head = _due(now).filter(target=target).order_by("starts_at", "id").first()
        if head is None:
            return 0
        holder = exclusive_live_holder(target=target, user=head.user) if target.exclusive else None
        waited = head.request.starts_at is None or _waited(head)
        if holder is not None:
            if not waited:
                grant_wait_record(head, holder, actor="system:sweeper")
            return 0
        head = Grant.objects.select_for_update(of=("self",)).select_related("user", "target", "request__policy").get(
            pk=head.pk)
        if head.state != GrantState.SCHEDULED or head.revoke_requested_at:
            return 0
        return int(_start(head, now, waited=waited) is not None)
