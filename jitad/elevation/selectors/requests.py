"""Requests a person may see (their own and those they approve), in a few queries, for the REST API.

Approver rights compare AD group names stored as JSON lists on a policy or target with the
person's groups, case-insensitively (as ``approvers.can_decide`` does). Here the comparison
runs inside the database (``jitad.accounts.groups.JSONListMatches``, through
``approvers.approver_scope``), so a list of requests is filtered and paginated by SQL, never
row by row in Python.
"""
from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery, prefetch_related_objects
from django.db.models.functions import Coalesce

from ..models import AccessRequest, Approval, Grant
from .approvers import approver_scope
from .targets import ID_TEXT


def requests_visible_to(*, user, as_approver: bool = True) -> QuerySet:
    """Requests ``user`` made, plus every request ``user`` is an approver for (by policy or target) unless
    ``as_approver`` is False (an automation identity's call: its own requests only, whatever groups it is in).

    Annotated with ``approvals_count`` (approve decisions, a correlated subquery rather than
    a GROUP BY, so the database can walk the newest requests and stop at the page size)
    and joined to what the API shows: a page of requests costs three queries (the third: the page's approvals, counted per stage),
    after three small ones that resolve the caller's approver groups, policies and targets.
    """
    visible = (Q(requester=user) | approver_scope(user=user, resolved=True)) if as_approver else Q(requester=user)
    return _as_shown(AccessRequest.objects.filter(visible))


def _as_shown(requests: QuerySet) -> QuerySet:
    approvals = (
        Approval.objects.filter(request=OuterRef("pk"), decision=Approval.Decision.APPROVE)
        .order_by()
        .values("request")
        .annotate(n=Count("id"))
        .values("n")
    )
    return (
        requests
        .select_related("target", "policy", "requester", "grant", "extends")
        .prefetch_related("approvals")  # each stage's approvals, one query per page
        .annotate(approvals_count=Coalesce(Subquery(approvals), 0))
        .order_by("-created_at", "-id")
    )


def request_current(*, request_id: int) -> AccessRequest:
    """Request ``request_id`` read again after a change made through it (counts and grant as they are now),
    as a list shows it (``requests_listed``'s columns, completed by ``requests_page_complete``).

    For a caller who has just acted on it, so may see it: no visibility filter, and so none of
    the three look-ups of the caller's approver groups that ``requests_visible_to`` makes.
    """
    return requests_page_complete([_listed(_as_shown(AccessRequest.objects.filter(pk=request_id))).get()])[0]


# What a list of requests shows of the rows it joins (the REST API's RequestSerializer and its grant).
SHOWN_GRANT = ("id", "request_id", "state", "starts_at", "expires_at", "activated_at", "revoke_requested_at",
               "revoked_at", "extensions", "account", "account_sam", "account_revealed_at")
SHOWN_JOINED = ("target__id", "target__name", "target__hostname", "policy__id", "policy__name", "requester__id",
                f"requester__{get_user_model().USERNAME_FIELD}", *(f"grant__{name}" for name in SHOWN_GRANT))
_JOINED = {"target", "policy", "requester", "extends"}


def requests_listed(*, user, as_approver: bool = True) -> QuerySet:
    """``requests_visible_to`` as a list shows them; complete each page with ``requests_page_complete``.

    The request's own columns, and of its target, policy, requester and grant only what a list
    shows: a policy's or target's rules (JSON lists) are neither sent by the database nor decoded
    for every row. The grant an extension extends and the approvals of requests with stages are
    read for the page only (``requests_page_complete``), so a page of plain requests joins four
    tables, not five, and PostgreSQL plans it in a fraction of the time.
    """
    return _listed(requests_visible_to(user=user, as_approver=as_approver))


def _listed(requests: QuerySet) -> QuerySet:
    """``_as_shown`` requests narrowed to what a list shows (``requests_listed``)."""
    own = [f.name for f in AccessRequest._meta.concrete_fields if f.name not in _JOINED]
    return (
        requests.select_related(None).prefetch_related(None)
        .select_related("target", "policy", "requester", "grant")
        .only(*own, "extends_id", *SHOWN_JOINED)
    )


def requests_page_complete(page: list[AccessRequest]) -> list[AccessRequest]:
    """Read what a page of ``requests_listed`` shows beyond its rows: the approvals of those with stages
    (counted per stage) and the grant each extension extends; one query each, none if no row needs it."""
    prefetch_related_objects(
        [r for r in page if r.stages],
        Prefetch("approvals", Approval.objects.only("id", "request_id", "decision", "stage", "approver_groups")))
    prefetch_related_objects([r for r in page if r.extends_id], Prefetch("extends", Grant.objects.only(*SHOWN_GRANT)))
    return page


def request_visible(*, user, request_id, as_approver: bool = True) -> AccessRequest | None:
    """Request ``request_id`` (an id as text or int) if ``user`` may see it (``requests_visible_to``), else None."""
    if isinstance(request_id, int):
        request_id = str(request_id)
    if not isinstance(request_id, str) or not ID_TEXT.fullmatch(request_id):
        return None
    return requests_visible_to(user=user, as_approver=as_approver).filter(pk=int(request_id)).first()


def request_grant(request: AccessRequest) -> Grant | None:
    """The grant a request concerns: its own, or for an extension the grant it extends."""
    if request.kind == AccessRequest.Kind.EXTENSION:
        return request.extends
    return getattr(request, "grant", None)
