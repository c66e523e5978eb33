"""Risk signals from session evidence: the servers' own Security logs, read for each grant (elevation's SessionSignal)."""
from django.db.models import Q

from jitad.elevation.models import EvidencePull, Grant, SessionSignal

from ...figures import Column, Figure, Table
from .common import MAX_ROWS, Scope, range_query, records

Kind = SessionSignal.Kind
FIGURES = (
    ("logon_after_end", Kind.LOGON_AFTER_END, "Logons after a grant ended (revocation did not take)"),
    ("log_cleared", Kind.LOG_CLEARED, "Security logs cleared in a grant's window"),
    ("unexpected_source", Kind.UNEXPECTED_SOURCE, "Logons from an unexpected address"),
    ("unused_elevation", Kind.UNUSED, "Grants never used (no logon on the server)"),
)


def _in_scope(scope: Scope) -> Q:
    """Rows of a grant in scope (its target; its request's policy)."""
    if scope.target_ids is None and scope.policy is None:
        return Q()
    return Q(grant__in=Grant.objects.filter(scope.grants_q()).values("id"))


def _collected(scope: Scope) -> bool:
    """Whether any grant in scope had its server read in the period: without that, the counts are unknown."""
    return EvidencePull.objects.filter(
        Q(finished_at__isnull=True) | Q(finished_at__gte=scope.start), _in_scope(scope),
        created_at__lt=scope.end, reads__gt=0).exists()


def evidence_signals(scope: Scope) -> tuple[list[Figure], Table]:
    """One figure per kind of session signal recorded in the period, and the list of them."""
    signals = SessionSignal.objects.filter(_in_scope(scope), at__gte=scope.start, at__lt=scope.end)
    known = _collected(scope) or signals.exists()
    ids: dict[str, list[int]] = {kind: [] for _key, kind, _label in FIGURES}
    for pk, kind in signals.order_by().values_list("pk", "kind"):
        ids.setdefault(kind, []).append(pk)
    figures = [
        Figure(key, label, len(ids[kind]) if known else None,
               records=records("elevation.sessionsignal", ids[kind],
                               fallback={"kind__exact": kind, **range_query("at", scope)}))
        for key, kind, label in FIGURES
    ]
    rows = list(signals.select_related("grant__user", "grant__target").order_by("-at")[:MAX_ROWS])
    shown = [{"at": s.at.isoformat(), "kind": s.get_kind_display(), "severity": s.severity,
              "user": s.grant.user.get_username(), "target": s.grant.target.name, "grant": s.grant_id,
              "detail": s.detail[:300]} for s in rows]
    table = Table(key="session_signals", title="Session signals (the servers' Security logs)", columns=[
        Column("at", "When (UTC)"), Column("kind", "Signal"), Column("severity", "Severity"), Column("user", "Person"),
        Column("target", "Target"), Column("grant", "Grant"), Column("detail", "Detail")], rows=shown,
        records={i: records("elevation.sessionsignal", [s.pk]) for i, s in enumerate(rows)})
    return figures, table

