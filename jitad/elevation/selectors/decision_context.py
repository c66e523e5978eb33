"""What an approver should know before deciding: the requester's history on the target, their
access right now, and where the request stands against its policy.

Computed for a whole page of requests in three queries, whatever the page size or the
table size, so the approval queue never issues a query per row.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ..models import AccessRequest, Approval, Grant
from .approvers import approvals_counted

# States in which a person holds, or is about to hold, the right.
HOLDING = (Grant.State.APPROVED, Grant.State.GRANTING, Grant.State.ACTIVE, Grant.State.UNVERIFIED, Grant.State.GRANT_FAILED,
           Grant.State.REVOKING, Grant.State.REVOKE_FAILED)


@dataclass
class ActiveAccess:
    """One grant the requester holds now."""

    target: str
    state: str
    expires_at: datetime


@dataclass
class DecisionContext:
    """Facts about one request, for the person deciding it."""

    recent_count: int = 0  # grants of this target to this requester in the history window
    recent_hours: float = 0.0  # hours they held it in that window
    days_held: int = 0  # distinct days with access to it in the always-on window
    always_on: bool = False  # held on so many days that it looks like a standing right in disguise
    active: list[ActiveAccess] = field(default_factory=list)  # what they hold now, anywhere
    approvals: int = 0  # approvals that count towards the policy's N
    required: int = 0
    decided_by: list[str] = field(default_factory=list)  # "name (approve)" / "name (deny)"


def _days(start: datetime, end: datetime) -> set[date]:
    """The UTC calendar days an interval touches."""
    first, last = start.date(), end.date()
    return {first + timedelta(days=n) for n in range((last - first).days + 1)} if end > start else set()


def decision_context_for(requests: list[AccessRequest], *, now=None) -> dict[int, DecisionContext]:
    """A DecisionContext per request id. ``requests`` need ``policy`` loaded (select_related)."""
    now = now or timezone.now()
    if not requests:
        return {}
    history_since = now - timedelta(days=settings.JITAD_CONTEXT_HISTORY_DAYS)
    pattern_since = now - timedelta(days=settings.JITAD_ALWAYS_ON_WINDOW_DAYS)
    users = {r.requester_id for r in requests}
    targets = {r.target_id for r in requests}
    wanted = {(r.requester_id, r.target_id) for r in requests}

    # 1. This requester's recent grants of the same targets.
    held: dict[tuple[int, int], list[tuple[datetime, datetime]]] = defaultdict(list)
    rows = (
        Grant.objects.filter(user_id__in=users, target_id__in=targets, created_at__gte=history_since)
        .exclude(activated_at=None)
        .values_list("user_id", "target_id", "activated_at", "expires_at", "revoked_at")
    )
    for user_id, target_id, start, expires, revoked in rows:
        if (user_id, target_id) in wanted:
            held[(user_id, target_id)].append((start, min(revoked or expires, expires, now)))

    # 2. What each requester holds now, anywhere.
    active: dict[int, list[ActiveAccess]] = defaultdict(list)
    for user_id, name, state, expires in (
        Grant.objects.filter(user_id__in=users, state__in=HOLDING)
        .order_by("expires_at")
        .values_list("user_id", "target__name", "state", "expires_at")
    ):
        active[user_id].append(ActiveAccess(target=name, state=state, expires_at=expires))

    # 3. Decisions so far.
    decisions: dict[int, list[tuple[str, str, list]]] = defaultdict(list)
    for request_id, username, decision, groups in (
        Approval.objects.filter(request_id__in=[r.pk for r in requests])
        .order_by("at")
        .values_list("request_id", "approver__username", "decision", "approver_groups")
    ):
        decisions[request_id].append((username, decision, groups))

    result = {}
    for r in requests:
        intervals = held.get((r.requester_id, r.target_id), [])
        days = set()
        for start, end in intervals:
            if end > pattern_since:
                days |= _days(max(start, pattern_since), end)
        made = decisions.get(r.pk, [])
        approved = [groups for _u, d, groups in made if d == Approval.Decision.APPROVE]
        result[r.pk] = DecisionContext(
            recent_count=len(intervals),
            recent_hours=round(sum((end - start).total_seconds() for start, end in intervals) / 3600, 1),
            days_held=len(days),
            always_on=len(days) >= settings.JITAD_ALWAYS_ON_MIN_DAYS,
            active=active.get(r.requester_id, []),
            approvals=approvals_counted(approved, distinct_groups=r.policy.distinct_approver_groups),
            required=r.approvals_required,
            decided_by=[f"{u} ({d})" for u, d, _g in made],
        )
    return result
