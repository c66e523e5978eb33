"""Find members of managed JIT groups that no grant backs, remove them, and alert."""
import logging
from collections import defaultdict
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import Grant, Target

log = logging.getLogger(__name__)


def _managed_groups() -> dict[str, set[str]]:
    """{group DN: normalised DNs allowed to stay without a grant} over enabled targets."""
    groups: dict[str, set[str]] = defaultdict(set)
    for t in Target.objects.filter(enabled=True).only("group_dn", "standing_members"):
        groups[t.group_dn] |= {directory.normalize_dn(dn) for dn in t.standing_members}
    return groups


def _backed(group_dn: str) -> set[str]:
    dns = Grant.objects.filter(group_dn=group_dn, state__in=Grant.BACKING_STATES).exclude(user_dn="")
    return {directory.normalize_dn(dn) for dn in dns.values_list("user_dn", flat=True)}


def reconcile_group(d: directory.Directory, group_dn: str, allowed: set[str]) -> list[str]:
    """Remove unbacked members of one group; return the DNs removed."""
    # Members first, grants second: a grant's DN is committed before its add, so any
    # member we read that a grant backs is visible in the read that follows.
    members = d.members_of(group_dn)
    backed = _backed(group_dn)
    extra = sorted(m for m in members if directory.normalize_dn(m) not in backed | allowed)
    if not extra:
        return []
    d.remove_members(group_dn, extra)
    # A grant may have started for one of them while we removed: put those back.
    now_backed = _backed(group_dn)
    for dn in extra:
        if directory.normalize_dn(dn) in now_backed:
            d.add_member(group_dn, dn)
    removed = [dn for dn in extra if directory.normalize_dn(dn) not in now_backed]
    if removed:
        with transaction.atomic():
            audit_record_many(
                [
                    AuditEntry(actor="system:reconciler", action="membership.removed_unbacked", object_type="group",
                               object_id=group_dn[:64], before="member", after="removed",
                               reason="member of a JIT group without a grant", data={"group": group_dn, "member": dn})
                    for dn in removed
                ]
            )
            alert_raise(
                event="reconcile.out_of_band",
                severity=Notification.Severity.CRITICAL,
                subject=f"Out-of-band admin membership removed from {group_dn.split(',')[0]}",
                body=(
                    f"{len(removed)} member(s) of {group_dn} had no jitad grant and were removed:\n"
                    + "\n".join(f"  {dn}" for dn in removed)
                    + "\nSomeone added them outside jitad: find out who (the DC's security log, event 4728/4756)."
                ),
                object_type="group",
                object_id=group_dn[:64],
            )
    return removed


def reconcile() -> dict[str, list[str]]:
    """Reconcile every managed group; a group that fails is logged and retried next run."""
    result = {}
    groups = _managed_groups()
    if not groups:
        return result
    with directory.connect() as d:
        for group_dn, allowed in groups.items():
            try:
                result[group_dn] = reconcile_group(d, group_dn, allowed)
            except directory.DirectoryError as e:
                log.warning("reconcile %s failed: %s", group_dn, e)
                if not e.transient:
                    _alert_unreadable(group_dn, e)
    return result


def _alert_unreadable(group_dn: str, error: directory.DirectoryError) -> None:
    """A managed group jitad cannot check (deleted, misnamed, no rights): alert, at most hourly."""
    key = group_dn[:64]
    recent = timezone.now() - timedelta(hours=1)
    if Notification.objects.filter(event="reconcile.group_unreadable", object_id=key, created_at__gte=recent).exists():
        return
    with transaction.atomic():
        alert_raise(
            event="reconcile.group_unreadable",
            severity=Notification.Severity.CRITICAL,
            subject=f"jitad cannot check the JIT group {group_dn.split(',')[0]}",
            body=(
                f"The reconciler could not read {group_dn}: {error}\n"
                "Out-of-band members of this group are not being removed. Check that the group exists "
                "and that the target's group DN in the policy file is right."
            ),
            object_type="group",
            object_id=key,
        )
