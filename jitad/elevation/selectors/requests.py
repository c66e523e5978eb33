"""Requests a person may see (their own and those they approve), in a few queries, for the REST API.

Approver rights compare AD group names stored as JSON lists on a policy or target with the
person's groups, case-insensitively (as ``approvers.can_decide`` does). Here the comparison
runs inside the database (``jitad.accounts.groups.JSONListMatches``, through
``approvers.approver_scope``), so a list of requests is filtered and paginated by SQL, never
row by row in Python.
"""
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from ..models import AccessRequest, Approval, Grant
from .approvers import approver_scope
from .targets import ID_TEXT


def requests_visible_to(*, user) -> QuerySet:
    """Requests ``user`` made, plus every request ``user`` is an approver for (by policy or target).

    Annotated with ``approvals_count`` (approve decisions, a correlated subquery rather than
    a GROUP BY, so the database can walk the newest requests and stop at the page size)
    and joined to what the API shows: a page of requests costs three queries (the third: the page's approvals, counted per stage),
    after three small ones that resolve the caller's approver groups, policies and targets.
    """
    visible = Q(requester=user) | approver_scope(user=user, resolved=True)
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
        .prefetch_related("approvals")  # each stage's approvals, one query per page
        .annotate(approvals_count=Coalesce(Subquery(approvals), 0))
        .order_by("-created_at", "-id")
    )


def request_visible(*, user, request_id) -> AccessRequest | None:
    """Request ``request_id`` (an id as text or int) if ``user`` may see it, else None."""
    if isinstance(request_id, int):
        request_id = str(request_id)
    if not isinstance(request_id, str) or not ID_TEXT.fullmatch(request_id):
        return None
    return requests_visible_to(user=user).filter(pk=int(request_id)).first()


def request_grant(request: AccessRequest) -> Grant | None:
    """The grant a request concerns: its own, or for an extension the grant it extends."""
    if request.kind == AccessRequest.Kind.EXTENSION:
        return request.extends
    return getattr(request, "grant", None)
