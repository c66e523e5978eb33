"""Read-side of the self-service pages: what a person may request, and their own requests and grants.

Every query here costs a fixed number of database round trips, however many targets,
requests or grants exist: the portal's pages must stay fast in a forest with thousands of
servers. The rules agree with ``policies.policy_for`` (the authority when a request is
made): an enabled policy covers a person by user name or by one of their Django group
names (case-insensitive), and the lowest (priority, name) wins.
"""
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone

from jitad.accounts.groups import group_names
from jitad.humantime import minutes_text

from ..models import AccessRequest, Grant, Policy, Target
from .extensions import extension_room
from .policies import policy_for

MAX_TERMS = 5
HISTORY_SIZE = 20

RequestState = AccessRequest.State
GrantState = Grant.State
# The engine is still working on these: the page polls fast while any is on screen.
BUSY_GRANT_STATES = (GrantState.APPROVED, GrantState.GRANTING, GrantState.REVOKING)
# The engine retries these against AD; with ``last_error`` set, AD is not answering.
RETRYING_GRANT_STATES = (GrantState.GRANTING, GrantState.REVOKING, GrantState.REVOKE_FAILED)
CURRENT_GRANT_STATES = (GrantState.APPROVED, GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED,
                        GrantState.GRANT_FAILED, GrantState.REVOKING, GrantState.REVOKE_FAILED)
EXTENDABLE_GRANT_STATES = (GrantState.APPROVED, GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED)


# -- eligibility -----------------------------------------------------------------------
@dataclass(frozen=True)
class EligibilityPage:
    """One page of (target, policy) pairs, and how many pairs match in all."""

    items: list[tuple[Target, Policy]]
    total: int


def _covering_policies(user) -> list[Policy]:
    """Enabled policies naming ``user`` or one of their groups, best (lowest priority, name) first."""
    groups = group_names(user)
    username = user.get_username().lower()
    return [
        p
        for p in Policy.objects.filter(enabled=True).order_by("priority", "name")
        if username in {u.lower() for u in p.eligible_users} or groups & {g.lower() for g in p.eligible_groups}
    ]


def _search_filter(q: str) -> Q:
    """Every word of ``q`` must appear in the target's name, host name or description."""
    condition = Q()
    for term in (q or "").split()[:MAX_TERMS]:
        condition &= Q(name__icontains=term) | Q(hostname__icontains=term) | Q(description__icontains=term)
    return condition


def eligibility_search(*, user, q: str = "", limit: int, offset: int = 0) -> EligibilityPage:
    """The enabled targets ``user`` may request, matching ``q``, by name; five queries at most."""
    policies = _covering_policies(user)
    if not policies:
        return EligibilityPage(items=[], total=0)
    links = Policy.targets.through.objects.filter(policy_id__in=[p.id for p in policies])
    targets = Target.objects.filter(_search_filter(q), enabled=True, id__in=links.values("target_id"))
    total = targets.count()
    page = list(targets.order_by("name", "id")[offset : offset + limit]) if total > offset else []
    if not page:
        return EligibilityPage(items=[], total=total)
    rank = {p.id: i for i, p in enumerate(policies)}
    best: dict[int, int] = {}
    for target_id, policy_id in links.filter(target_id__in=[t.id for t in page]).values_list("target_id", "policy_id"):
        if target_id not in best or rank[policy_id] < rank[best[target_id]]:
            best[target_id] = policy_id
    return EligibilityPage(items=[(t, policies[rank[best[t.id]]]) for t in page], total=total)


def _policies_for_targets(user, target_ids: set[int]) -> dict[int, Policy]:
    """The policy that lets ``user`` request each target (as ``policy_for`` decides), in three queries."""
    if not target_ids:
        return {}
    policies = _covering_policies(user)
    rank = {p.id: i for i, p in enumerate(policies)}
    best: dict[int, Policy] = {}
    links = Policy.targets.through.objects.filter(policy_id__in=list(rank), target_id__in=list(target_ids))
    for target_id, policy_id in links.values_list("target_id", "policy_id"):
        if target_id not in best or rank[policy_id] < rank[best[target_id].id]:
            best[target_id] = policies[rank[policy_id]]
    return best


def eligible_target_get(*, user, target_id) -> tuple[Target, Policy] | None:
    """The enabled target with ``target_id`` and the policy that lets ``user`` request it, or None."""
    try:
        target_id = int(target_id)
    except (TypeError, ValueError):
        return None
    target = Target.objects.filter(pk=target_id, enabled=True).first()
    if target is None:
        return None
    policy = policy_for(user=user, target=target)
    return (target, policy) if policy is not None else None


# -- a person's own requests and grants ------------------------------------------------
def own_request_get(*, user, request_id: int) -> AccessRequest | None:
    """``user``'s request with this id, or None (someone else's looks the same as a missing one)."""
    return AccessRequest.objects.select_related("target").filter(pk=request_id, requester=user).first()


def own_grant_get(*, user, grant_id: int) -> Grant | None:
    """``user``'s grant with this id, or None (someone else's looks the same as a missing one)."""
    return Grant.objects.select_related("target", "request").filter(pk=grant_id, user=user).first()


@dataclass
class GrantRow:
    """A current grant and what its holder may do with it now."""

    grant: Grant
    can_release: bool
    can_extend: bool
    pending_extension: AccessRequest | None = None
    revoke_detail: str = ""


@dataclass
class HistoryRow:
    """A finished request or grant, newest first on the page."""

    at: datetime
    kind: str  # "request" or "grant"
    obj: object
    state: str
    detail: str = ""


@dataclass
class AccessOverview:
    """Everything the "My access" page shows, plus a fingerprint that changes when any of it does."""

    pending: list[AccessRequest]
    grants: list[GrantRow]
    history: list[HistoryRow]
    retrying: list[Grant] = field(default_factory=list)
    failed: list[Grant] = field(default_factory=list)
    busy: bool = False  # the engine is applying or removing something right now
    version: str = ""


def revoke_detail(grant: Grant) -> str:
    """Why a grant ended (or is ending), in the words its holder sees: an administrator's reason included."""
    if grant.revoke_reason == Grant.RevokeReason.ADMIN:
        by = grant.revoke_requested_by or "an administrator"
        return f"Revoked by {by}" + (f": {grant.revoke_comment}" if grant.revoke_comment else "")
    if grant.revoke_reason == Grant.RevokeReason.RELEASED:
        return "Released early" if grant.state == GrantState.REVOKED else "Release requested"
    return grant.get_revoke_reason_display().capitalize() if grant.revoke_reason else ""


def _history(user) -> list[HistoryRow]:
    finished = (
        AccessRequest.objects.filter(requester=user)
        .exclude(state=RequestState.PENDING)
        .exclude(kind=AccessRequest.Kind.NEW, state=RequestState.APPROVED)  # those live on as grants
        .select_related("target")
        .prefetch_related("approvals")
        .order_by("-decided_at", "-created_at")[:HISTORY_SIZE]
    )
    rows = []
    for r in finished:
        if r.state == RequestState.DENIED:
            comments = [a.comment for a in r.approvals.all() if a.decision == "deny" and a.comment]
            detail = "Denied" + (f": {comments[0]}" if comments else "")
        elif r.state == RequestState.EXPIRED_UNAPPROVED:
            detail = "Nobody decided in time"
        elif r.state == RequestState.CANCELLED:
            detail = "Cancelled"
        else:
            detail = f"{minutes_text(r.duration_minutes)} more on grant #{r.extends_id}"
        rows.append(HistoryRow(at=r.decided_at or r.created_at, kind="request", obj=r, state=r.state, detail=detail))
    revoked = (Grant.objects.filter(user=user, state=GrantState.REVOKED).select_related("target")
               .order_by("-revoked_at")[:HISTORY_SIZE])
    for g in revoked:
        rows.append(HistoryRow(at=g.revoked_at or g.expires_at, kind="grant", obj=g, state=g.state,
                               detail=revoke_detail(g)))
    rows.sort(key=lambda row: row.at, reverse=True)
    return rows[:HISTORY_SIZE]


def _fingerprint(pending, grants, history) -> str:
    parts = [("r", r.pk, r.state, r.approvals_given) for r in pending]
    parts += [("g", g.pk, g.state, g.expires_at, g.revoke_requested_at, g.last_error, g.extensions) for g in grants]
    parts += [(h.kind, h.obj.pk, h.state) for h in history]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def access_overview(*, user) -> AccessOverview:
    """``user``'s pending requests, current grants and recent history; five queries."""
    pending = list(
        AccessRequest.objects.filter(requester=user, state=RequestState.PENDING)
        .select_related("target")
        .annotate(approvals_given=Count("approvals", filter=Q(approvals__decision="approve")))
        .order_by("-created_at")
    )
    grants = list(
        Grant.objects.filter(user=user, state__in=CURRENT_GRANT_STATES).select_related("target").order_by("expires_at")
    )
    extension_for = {r.extends_id: r for r in pending if r.extends_id}
    extendable = [g for g in grants if g.state in EXTENDABLE_GRANT_STATES and not g.revoke_requested_at]
    policies = _policies_for_targets(user, {g.target_id for g in extendable})
    now = timezone.now()
    rows = [
        GrantRow(
            grant=g,
            can_release=g.state in Grant.LIVE_STATES and not g.revoke_requested_at,
            # Offered only when it can be done: the policy allows another extension and a longer grant.
            can_extend=g in extendable and g.pk not in extension_for
            and bool(extension_room(grant=g, policy=policies.get(g.target_id), now=now)),
            pending_extension=extension_for.get(g.pk),
            revoke_detail=revoke_detail(g) if g.revoke_requested_at else "",
        )
        for g in grants
    ]
    history = _history(user)
    return AccessOverview(
        pending=pending,
        grants=rows,
        history=history,
        retrying=[g for g in grants if g.state in RETRYING_GRANT_STATES and g.last_error],
        failed=[g for g in grants if g.state in (GrantState.GRANT_FAILED, GrantState.UNVERIFIED)],
        busy=any(g.state in BUSY_GRANT_STATES for g in grants),
        version=_fingerprint(pending, grants, history),
    )
