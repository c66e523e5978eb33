"""A person's own requests and grants: the "My access" page and the rows its buttons act on.

Every query here costs a fixed number of database round trips, however many requests or
grants exist: the portal's pages must stay fast in a forest with thousands of servers.
"""
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, F, Q
from django.utils import timezone

from jitad.humantime import minutes_text

from ..models import AccessRequest, Grant
from .eligibility import policies_for_targets
from .grants import extension_room

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
    parts = [("r", r.pk, r.state, r.approvals_given, r.stage) for r in pending]
    parts += [("g", g.pk, g.state, g.expires_at, g.revoke_requested_at, g.last_error, g.extensions) for g in grants]
    parts += [(h.kind, h.obj.pk, h.state) for h in history]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def stage_text(request: AccessRequest) -> str:
    """"stage 1 of 2 (peer): 0 of 1" for a pending request of several stages (annotated ``stage_approvals``);
    "" for one of a single stage, whose approvals the page shows already."""
    stages = request.stages or []
    if len(stages) < 2 or request.stage >= len(stages):
        return ""
    stage = stages[request.stage]
    required = int(stage.get("approvals_required", 1))
    done = min(required, getattr(request, "stage_approvals", 0))
    return f"stage {request.stage + 1} of {len(stages)} ({stage.get('name', '')}): {done} of {required}"


def access_overview(*, user) -> AccessOverview:
    """``user``'s pending requests, current grants and recent history; five queries."""
    pending = list(
        AccessRequest.objects.filter(requester=user, state=RequestState.PENDING)
        .select_related("target")
        .annotate(approvals_given=Count("approvals", filter=Q(approvals__decision="approve")),
                  stage_approvals=Count("approvals", filter=Q(approvals__decision="approve", approvals__stage=F("stage"))))
        .order_by("-created_at")
    )
    for r in pending:
        r.stage_text = stage_text(r)
    grants = list(
        Grant.objects.filter(user=user, state__in=CURRENT_GRANT_STATES).select_related("target").order_by("expires_at")
    )
    extension_for = {r.extends_id: r for r in pending if r.extends_id}
    extendable = [g for g in grants if g.state in EXTENDABLE_GRANT_STATES and not g.revoke_requested_at]
    policies = policies_for_targets(user=user, target_ids={g.target_id for g in extendable})
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
