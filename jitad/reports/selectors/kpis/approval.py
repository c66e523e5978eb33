"""Approval time: request → decision and request → active, automatic against manual, by approver group."""
import json
from bisect import bisect_left
from collections import Counter, defaultdict

from django.db.models import TextField
from django.db.models.functions import Cast

from jitad.elevation.models import AccessRequest, Approval, Grant

from ...figures import Chart, Column, Figure, Section, Table
from .common import DURATION_EDGES, Scope, elapsed, percentile, range_query, records

DEFINITION = (
    "Requests made in the period. Decision time: created → decided, for requests approved or denied. "
    "Active time: created → the grant's activation (the right shown to exist). Automatic: approved with no "
    "approver's decision recorded; manual: at least one. Percentiles by nearest rank. Timed out: requests "
    "left pending until their window closed (expired_unapproved). By approver group: each approver's "
    "decision counted for every approver group they decided as."
)

DECIDED = (AccessRequest.State.APPROVED, AccessRequest.State.DENIED)


def _tenth(value: float) -> float:
    return round(value, 1)


def _stats(values: list[float]) -> tuple:
    """Median, 95th percentile and longest of raw seconds, each rounded to a tenth.

    Rounding is monotonic, so the rank picked among raw values is the one among rounded values:
    only three values are rounded, not every row.
    """
    values = sorted(values)
    picks = percentile(values, 50), percentile(values, 95), (values[-1] if values else None)
    return tuple(None if v is None else _tenth(v) for v in picks)


def _histogram(values, edges) -> dict[str, int]:
    """Counts per bucket label of raw seconds rounded to a tenth (as ``common.histogram`` of the rounded values),
    by binary search over the sorted values rather than a bucket lookup per row."""
    values = sorted(values)
    counts, below = {}, 0
    for upper, label in edges[:-1]:
        n = bisect_left(values, upper, key=_tenth)  # values whose tenth is below the edge
        counts[label] = n - below
        below = n
    counts[edges[-1][1]] = len(values) - below
    return counts


def _group_list(text) -> list[str]:
    try:
        groups = json.loads(text) if text else []
    except ValueError:
        groups = []
    return [str(g) for g in groups] if isinstance(groups, list) and groups else ["(no group recorded)"]


def section(scope: Scope) -> Section:
    """The approval section: percentiles, counts, a histogram of decision times, a table per approver group."""
    base = AccessRequest.objects.filter(scope.requests_q(), created_at__gte=scope.start,
                                        created_at__lt=scope.end).order_by()
    rows = list(base.values_list("id", "state", elapsed("decided_at", "created_at")))
    # A grant is created after its request: its own created_at index narrows the join to the period's grants.
    active = list(Grant.objects.filter(scope.grants_q(), created_at__gte=scope.start, activated_at__isnull=False,
                                       request__created_at__gte=scope.start, request__created_at__lt=scope.end)
                  .order_by().values_list("id", "request_id", elapsed("activated_at", "request__created_at")))
    # The groups as text: a handful of distinct lists, decoded once each rather than once per row.
    approvals = list(Approval.objects.filter(scope.requests_q("request__"), request__created_at__gte=scope.start,
                                             request__created_at__lt=scope.end, request__state__in=DECIDED)
                     .order_by().values_list("request_id", elapsed("at", "request__created_at"),
                                             Cast("approver_groups", TextField())))
    counts = Counter(r[1] for r in rows)  # indexing, not star-unpacking: no list per row
    decided_by_someone = {a[0] for a in approvals}  # manual: at least one approver's decision recorded
    # Raw seconds; tenths (no float noise at a bucket's edge) are taken by _stats and _histogram.
    decided = [(i, d, i in decided_by_someone) for i, state, d in rows if state in DECIDED and d is not None]
    active_by_request = [(r, a) for _g, r, a in active]
    active = [(g, a) for g, _r, a in active]
    decision_s = [d for _i, d, _m in decided]
    auto_ids = [i for i, _d, m in decided if not m]
    manual_ids = [i for i, _d, m in decided if m]
    active_s = [a for _g, a in active]
    d50, d95, dmax = _stats(decision_s)
    a50, a95, amax = _stats(active_s)
    timed_out = counts.get(AccessRequest.State.EXPIRED_UNAPPROVED, 0)
    total = sum(counts.values())
    fallback = range_query("created_at", scope)
    decided_ids = [r[0] for r in decided]
    figures = [
        Figure("decision_p50_s", "Request → decision, median", d50, "s", records("elevation.accessrequest", decided_ids,
                                                                              fallback=fallback)),
        Figure("decision_p95_s", "Request → decision, 95th percentile", d95, "s"),
        Figure("decision_max_s", "Request → decision, longest", dmax, "s"),
        Figure("active_p50_s", "Request → active, median", a50, "s",
               records("elevation.grant", [r[0] for r in active], fallback=range_query("activated_at", scope))),
        Figure("active_p95_s", "Request → active, 95th percentile", a95, "s"),
        Figure("active_max_s", "Request → active, longest", amax, "s"),
        Figure("auto_count", "Approved automatically", len(auto_ids) if total else None,
               records=records("elevation.accessrequest", auto_ids, fallback=fallback)),
        Figure("manual_count", "Decided by approvers", len(manual_ids) if total else None,
               records=records("elevation.accessrequest", manual_ids, fallback=fallback)),
        Figure("timed_out", "Left to time out", timed_out if total else None,
               records=_timed_out_records(rows, scope) if timed_out else None),
    ]
    auto_hist = _histogram([d for _i, d, m in decided if not m], DURATION_EDGES)
    manual_hist = _histogram([d for _i, d, m in decided if m], DURATION_EDGES)
    dist = Table(
        key="distribution", title="Request → decision, automatic and manual",
        columns=[Column("bucket", "Time to decision"), Column("auto", "Automatic"), Column("manual", "Manual")],
        rows=[{"bucket": b, "auto": auto_hist[b], "manual": manual_hist[b]} for b in auto_hist],
        chart=Chart("histogram", "bucket", ("auto", "manual")),
    )
    active_of = dict(active_by_request)
    modes_rows = []
    for mode, ids in (("automatic", auto_ids), ("manual", manual_ids)):
        members = set(ids)
        dp50, dp95, dmx = _stats([d for i, d, _m in decided if i in members])
        ap50, ap95, amx = _stats([active_of[i] for i in ids if i in active_of])
        modes_rows.append({"mode": mode, "requests": len(ids), "decision_p50_s": dp50, "decision_p95_s": dp95,
                           "decision_max_s": dmx, "active_p50_s": ap50, "active_p95_s": ap95, "active_max_s": amx})
    modes = Table(
        key="modes", title="Automatic against manual approval",
        columns=[Column("mode", "Approval"), Column("requests", "Requests"),
                 Column("decision_p50_s", "Decision, median", "s"), Column("decision_p95_s", "Decision, p95", "s"),
                 Column("decision_max_s", "Decision, longest", "s"), Column("active_p50_s", "Active, median", "s"),
                 Column("active_p95_s", "Active, p95", "s"), Column("active_max_s", "Active, longest", "s")],
        rows=modes_rows, chart=Chart("bar", "mode", ("decision_p50_s", "decision_p95_s")),
        records={k: r for k, r in enumerate([records("elevation.accessrequest", auto_ids, fallback=fallback),
                                             records("elevation.accessrequest", manual_ids, fallback=fallback)])
                 if r is not None},
    )
    by_group: dict[str, list] = defaultdict(list)
    ids_by_group: dict[str, set] = defaultdict(set)
    decoded: dict[str, list] = {}
    for req, took, groups in approvals:
        if groups not in decoded:
            decoded[groups] = _group_list(groups)
        for g in decoded[groups]:
            by_group[g].append(took)
            ids_by_group[g].add(req)
    rows, recs = [], {}
    for g in sorted(by_group):
        p50, p95, mx = _stats(by_group[g])
        rows.append({"group": g, "decisions": len(by_group[g]), "p50_s": p50, "p95_s": p95, "max_s": mx})
        recs[len(rows) - 1] = records("elevation.accessrequest", ids_by_group[g], fallback=fallback)
    groups_table = Table(
        key="approver_groups", title="Decision time by approver group",
        columns=[Column("group", "Approver group"), Column("decisions", "Decisions"), Column("p50_s", "Median", "s"),
                 Column("p95_s", "95th percentile", "s"), Column("max_s", "Longest", "s")],
        rows=rows, chart=Chart("bar", "group", ("p50_s", "p95_s")), records=recs,
    )
    return Section("approval", "Approval time", DEFINITION, figures, [dist, modes, groups_table])


def _timed_out_records(rows, scope: Scope):
    expired = AccessRequest.State.EXPIRED_UNAPPROVED
    ids = [r[0] for r in rows if r[1] == expired]
    return records("elevation.accessrequest", ids,
                   fallback={"state": AccessRequest.State.EXPIRED_UNAPPROVED, **range_query("created_at", scope)})
