"""Retention: delete old *closed* records in bounded batches, never a live or open one, and audit the counts.

JITAD_RETENTION_DAYS (0: keep forever) covers ended grants with their requests and approvals,
requests closed without a grant, finished host scans (a target's newest is kept) and resolved
standing findings, notifications whose deliveries are all sent or abandoned, closed held
removals, and closed break-glass checkouts whose review is closed. JITAD_AUDIT_RETENTION_DAYS
covers audit events, through ``jitad.audit.services.audit_prune`` (which keeps a checkpoint so
the rest of the chain still verifies). What an auditor loses: docs/access-history.md.

Foreign keys: a grant PROTECTs its request and every extension request PROTECTs the grant it
extends, so a batch deletes extension requests, then grants, then their requests; approvals,
deliveries, checkout approvals, runbook ticks and reviews go by CASCADE with their parent.
Each batch is its own transaction and re-checks its rows are still closed and old.
"""
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from jitad.audit import services as audit
from jitad.audit.services import audit_record
from jitad.breakglass.models import Checkout, Review
from jitad.elevation.models import AccessRequest, Grant, HeldRemoval, HostScan, StandingAdmin
from jitad.notifications.models import Delivery, Notification

ACTOR = "system:retention"
# The reconciler's brake reads the last 30 days of closed holds (services.held_removals): keep them.
HELD_REMOVAL_FLOOR_DAYS = 30
CLOSED_REQUESTS = (AccessRequest.State.DENIED, AccessRequest.State.EXPIRED_UNAPPROVED, AccessRequest.State.CANCELLED)
CLOSED_CHECKOUTS = (Checkout.State.CLOSED, Checkout.State.DENIED, Checkout.State.CANCELLED, Checkout.State.EXPIRED)


@dataclass
class PruneResult:
    """What a run deleted (or, dry, would delete), by kind of row."""

    dry_run: bool
    before: datetime | None
    audit_before: datetime | None
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def ended_grants(before: datetime):
    """Revoked grants that ended before ``before`` and whose extension requests have no grant of their own."""
    return Grant.objects.filter(state=Grant.State.REVOKED, revoked_at__lt=before).exclude(
        Exists(AccessRequest.objects.filter(extends=OuterRef("pk"), grant__isnull=False)))


def closed_requests(before: datetime):
    """Requests closed without a grant (denied, expired, cancelled) before ``before``."""
    return (AccessRequest.objects.annotate(closed_at=Coalesce("decided_at", "created_at"))
            .filter(state__in=CLOSED_REQUESTS, closed_at__lt=before, grant__isnull=True))


def finished_scans(before: datetime):
    """Finished scans older than ``before``, except each target's newest finished one (its "last scanned")."""
    later = HostScan.objects.filter(target=OuterRef("target"), finished_at__gt=OuterRef("finished_at"))
    return HostScan.objects.filter(finished_at__lt=before).filter(Exists(later))


def resolved_findings(before: datetime):
    return StandingAdmin.objects.filter(resolved_at__lt=before)


def closed_notifications(before: datetime):
    """Notifications older than ``before`` none of whose deliveries may still be sent."""
    open_delivery = Delivery.objects.filter(notification=OuterRef("pk")).filter(
        Q(state=Delivery.State.PENDING) | Q(state=Delivery.State.FAILED, next_attempt_at__isnull=False))
    return Notification.objects.filter(created_at__lt=before).exclude(Exists(open_delivery))


def closed_held_removals(before: datetime):
    """Holds decided and over: removed, cleared, or discarded and then seen gone from the group."""
    floor = min(before, timezone.now() - timedelta(days=HELD_REMOVAL_FLOOR_DAYS))
    S = HeldRemoval.State
    return HeldRemoval.objects.filter(
        Q(state__in=[S.DONE, S.CLEARED], done_at__lt=floor) | Q(state=S.DISCARDED, left_at__lt=floor))


def closed_checkouts(before: datetime):
    """Closed checkouts (and refused ones) older than ``before`` whose review, if any, is closed."""
    return (Checkout.objects.annotate(ended_at=Coalesce("closed_at", "decided_at", "requested_at"))
            .filter(state__in=CLOSED_CHECKOUTS, ended_at__lt=before)
            .exclude(Exists(Review.objects.filter(checkout=OuterRef("pk")).exclude(state=Review.State.CLOSED))))


def _ids(qs, batch: int) -> list[int]:
    return list(qs.order_by("pk").values_list("pk", flat=True)[:batch])


def _batches(name: str, select, delete, result: PruneResult, batch: int) -> None:
    """Delete ``select()``'s rows ``batch`` at a time (``delete(ids)`` returns the counts it made)."""
    if result.dry_run:
        result.add(name, select().count())
        return
    last = None
    while True:
        ids = _ids(select(), batch)
        if not ids or ids == last:  # nothing left, or rows that would not go: stop rather than spin
            return
        with transaction.atomic():
            for kind, n in delete(ids).items():
                result.add(kind, n)
        if len(ids) < batch:
            return
        last = ids


def _delete_grants(before):
    def delete(ids):
        grants = ended_grants(before).filter(pk__in=ids)  # re-checked inside the transaction
        ids = list(grants.values_list("pk", flat=True))
        request_ids = list(Grant.objects.filter(pk__in=ids).values_list("request_id", flat=True))
        counts = {}
        _n, by = AccessRequest.objects.filter(extends_id__in=ids).delete()
        extensions = by.get("elevation.AccessRequest", 0)
        approvals = by.get("elevation.Approval", 0)
        counts["grants"] = Grant.objects.filter(pk__in=ids).delete()[1].get("elevation.Grant", 0)
        _n, by = AccessRequest.objects.filter(pk__in=request_ids).delete()
        counts["requests"] = extensions + by.get("elevation.AccessRequest", 0)
        counts["approvals"] = approvals + by.get("elevation.Approval", 0)
        return counts
    return delete


def _simple(qs_of, label: str, model_label: str, extra: dict[str, str] | None = None):
    def delete(ids):
        _n, by = qs_of().filter(pk__in=ids).delete()
        counts = {label: by.get(model_label, 0)}
        for kind, other in (extra or {}).items():
            counts[kind] = by.get(other, 0)
        return counts
    return delete


def retention_prune(*, days: int | None = None, audit_days: int | None = None, dry_run: bool = False,
                    batch: int = 500) -> PruneResult:
    """Delete closed records older than ``days`` and audit events older than ``audit_days`` (0: keep).

    Defaults come from JITAD_RETENTION_DAYS and JITAD_AUDIT_RETENTION_DAYS. ``dry_run`` counts
    what would go and changes nothing. A real run records one ``retention.pruned`` audit event
    with the counts.
    """
    days = settings.JITAD_RETENTION_DAYS if days is None else days
    audit_days = settings.JITAD_AUDIT_RETENTION_DAYS if audit_days is None else audit_days
    now = timezone.now()
    before = now - timedelta(days=days) if days > 0 else None
    audit_before = now - timedelta(days=audit_days) if audit_days > 0 else None
    result = PruneResult(dry_run=dry_run, before=before, audit_before=audit_before)
    if before is not None:
        b = before
        _batches("grants", lambda: ended_grants(b), _delete_grants(b), result, batch)
        _batches("requests", lambda: closed_requests(b),
                 _simple(lambda: closed_requests(b), "requests", "elevation.AccessRequest",
                         {"approvals": "elevation.Approval"}), result, batch)
        _batches("standing_findings", lambda: resolved_findings(b),
                 _simple(lambda: resolved_findings(b), "standing_findings", "elevation.StandingAdmin"), result, batch)
        _batches("host_scans", lambda: finished_scans(b),
                 _simple(lambda: finished_scans(b), "host_scans", "elevation.HostScan"), result, batch)
        _batches("notifications", lambda: closed_notifications(b),
                 _simple(lambda: closed_notifications(b), "notifications", "notifications.Notification",
                         {"deliveries": "notifications.Delivery", "digest_entries": "notifications.DigestEntry"}),
                 result, batch)
        _batches("held_removals", lambda: closed_held_removals(b),
                 _simple(lambda: closed_held_removals(b), "held_removals", "elevation.HeldRemoval"), result, batch)
        _batches("checkouts", lambda: closed_checkouts(b),
                 _simple(lambda: closed_checkouts(b), "checkouts", "breakglass.Checkout",
                         {"checkout_approvals": "breakglass.CheckoutApproval", "runbook_ticks": "breakglass.RunbookTick",
                          "reviews": "breakglass.Review"}), result, batch)
    if audit_before is not None:
        if dry_run:
            from jitad.audit.models import AuditEvent

            result.add("audit_events", AuditEvent.objects.filter(at__lt=audit_before).count())
        else:
            result.add("audit_events", audit.audit_prune(before=audit_before))
    if not dry_run and (before is not None or audit_before is not None):
        with transaction.atomic():
            audit_record(actor=ACTOR, action="retention.pruned", object_type="retention", object_id="-",
                         reason=f"records closed before {before.isoformat() if before else 'never'}, "
                                f"audit events before {audit_before.isoformat() if audit_before else 'never'}",
                         data={"counts": {k: v for k, v in result.counts.items() if v}, "days": days,
                               "audit_days": audit_days})
    return result
