"""Read-side queries for the REST API: what a person may request, see and decide, in a few queries.

Eligibility and approver rights compare AD group names stored as JSON lists on a policy
with the person's groups, case-insensitively (as ``policies.policy_for`` and
``approvers.can_decide`` do). Here the comparison runs inside the database
(``jitad.accounts.groups.JSONListMatches``, through ``approvers.approver_scope``), so a
list of requests is filtered and paginated by SQL, never row by row in Python.
"""
import re

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from ..models import AccessRequest, Approval, Grant, Target
from .approvers import approver_scope

_ID = re.compile(r"[0-9]{1,18}")  # fits a 64-bit integer column


# -- targets -----------------------------------------------------------------------------
def target_find(*, ref) -> Target | None:
    """The target named exactly ``ref``, or else with id ``ref``; None if there is none."""
    if isinstance(ref, bool) or ref is None:
        return None
    if isinstance(ref, int):
        return Target.objects.filter(pk=ref).first() if 0 < ref < 2**63 else None
    ref = str(ref).strip()
    target = Target.objects.filter(name=ref).first()
    if target is None and _ID.fullmatch(ref):
        target = Target.objects.filter(pk=int(ref)).first()
    return target


# -- requests ----------------------------------------------------------------------------
def requests_visible_to(*, user) -> QuerySet:
    """Requests ``user`` made, plus every request ``user`` is an approver for (by policy or target).

    Annotated with ``approvals_count`` (approve decisions, a correlated subquery rather than
    a GROUP BY, so the database can walk the newest requests and stop at the page size)
    and joined to what the API shows: a page of requests costs two queries.
    """
    visible = Q(requester=user) | approver_scope(user=user)
    approvals = (
        Approval.objects.filter(request=OuterRef("pk"), decision=Approval.Decision.APPROVE)
        .order_by()
        .values("request")
        .annotate(n=Count("id"))
        .values("n")
    )
    return (
        AccessRequest.objects.filter(visible)
        .select_related("target", "policy", "requester", "grant", "extends")
        .annotate(approvals_count=Coalesce(Subquery(approvals), 0))
        .order_by("-created_at", "-id")
    )


def request_visible(*, user, request_id) -> AccessRequest | None:
    """Request ``request_id`` (an id as text or int) if ``user`` may see it, else None."""
    if isinstance(request_id, int):
        request_id = str(request_id)
    if not isinstance(request_id, str) or not _ID.fullmatch(request_id):
        return None
    return requests_visible_to(user=user).filter(pk=int(request_id)).first()


def request_grant(request: AccessRequest) -> Grant | None:
    """The grant a request concerns: its own, or for an extension the grant it extends."""
    if request.kind == AccessRequest.Kind.EXTENSION:
        return request.extends
    return getattr(request, "grant", None)
