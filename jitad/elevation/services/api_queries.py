"""Read-side queries for the REST API: what a person may request, see and decide, in a few queries.

Eligibility and approver rights compare AD group names stored as JSON lists on a policy
with the person's groups, case-insensitively (as ``policies.policy_for`` and
``approvers.can_decide`` do). Here the comparison runs inside the database, so a list of
requests is filtered and paginated by SQL, never row by row in Python.

Both sides are lowered by the database's ``lower()``. SQLite's folds ASCII only, so a
non-ASCII group name must be spelt with the same case in the policy as in AD to match
there; PostgreSQL folds it like Python.
"""
import re

from django.contrib.auth.models import Group
from django.db import NotSupportedError
from django.db.models import BooleanField, Count, F, Func, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Lower

from ..models import AccessRequest, Approval, Grant, Target

_ID = re.compile(r"[0-9]{1,18}")  # fits a 64-bit integer column


class JSONListMatches(Func):
    """True when the JSON list in ``field`` holds one of ``names`` (case-insensitive).

    ``names`` is a list of strings, or a one-column queryset of names already lowered.
    """

    output_field = BooleanField()

    def __init__(self, field: str, names):
        if isinstance(names, QuerySet):
            self.literal_names = None
            super().__init__(F(field), Subquery(names))
        else:
            self.literal_names = [str(n) for n in names]
            super().__init__(F(field))

    def _names_sql(self, compiler):
        if self.literal_names is None:
            return compiler.compile(self.source_expressions[1])
        return "(" + ", ".join(["lower(%s)"] * len(self.literal_names)) + ")", list(self.literal_names)

    def _empty(self):
        return self.literal_names is not None and not self.literal_names

    def as_sqlite(self, compiler, connection, **extra):
        if self._empty():
            return "0", []
        column, params = compiler.compile(self.source_expressions[0])
        names, name_params = self._names_sql(compiler)
        sql = (
            f"EXISTS (SELECT 1 FROM json_each(CASE json_type({column}) WHEN 'array' THEN {column} ELSE '[]' END) AS m "
            f"WHERE lower(m.value) IN {names})"
        )
        return sql, (*params, *params, *name_params)

    def as_postgresql(self, compiler, connection, **extra):
        if self._empty():
            return "false", []
        column, params = compiler.compile(self.source_expressions[0])
        names, name_params = self._names_sql(compiler)
        sql = (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof({column}) = 'array' "
            f"THEN {column} ELSE '[]'::jsonb END) AS m(value) WHERE lower(m.value) IN {names})"
        )
        return sql, (*params, *params, *name_params)

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"jitad's policy queries support SQLite and PostgreSQL, not {connection.vendor}")


def _group_names(user) -> QuerySet:
    """``user``'s group names, lowered, as a subquery."""
    return Group.objects.filter(user=user).annotate(key=Lower("name")).values("key")


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
    from .approvers import approver_scope

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
