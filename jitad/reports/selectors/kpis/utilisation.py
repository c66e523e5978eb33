"""JIT utilisation: privileged rights held through JIT against standing rights, people and principal-hours."""
from collections import Counter, defaultdict

from jitad.elevation.models import Target

from ...figures import Chart, Column, Figure, Section, Table
from .common import MAX_ROWS, Scope, merge, pct, range_query, records
from .intervals import scanned_targets, scope_grants, scope_standing

DEFINITION = (
    "A right is a (principal, target) pair. JIT principals: pairs with a grant in effect during the period "
    "(activated, not yet verified removed); standing principals: pairs with an open standing-admin finding "
    "during the period, on servers with a successful scan. Principal-hours: time within the period, "
    "overlapping grants of the same pair counted once. Share = JIT / (JIT + standing), known only when a "
    "server in scope has been scanned."
)


def _hours(intervals, lo: float, hi: float) -> float:
    return sum(e - s for s, e in merge((max(s, lo), min(e, hi)) for s, e in intervals)) / 3600


def section(scope: Scope) -> Section:
    """The utilisation section: headline shares, and the per-server bars where scans exist."""
    lo, hi = scope.start.timestamp(), min(scope.end, scope.now).timestamp()
    grants = scope_grants(scope)
    standing = scope_standing(scope)
    scanned = scanned_targets(scope.end, q=scope.targets_q())
    jit_pairs: dict[tuple, list] = defaultdict(list)
    jit_ids: dict[int, list] = defaultdict(list)  # only for scanned servers (their table rows)
    for gid, user, target, start, end in grants:
        jit_pairs[(user, target)].append((start, end))
        if target in scanned:
            jit_ids[target].append(gid)
    st_pairs: dict[tuple, list] = defaultdict(list)
    st_ids: dict[int, list] = defaultdict(list)
    for fid, target, sid, start, end in standing:
        if target in scanned:
            st_pairs[(sid, target)].append((start, end))
            st_ids[target].append(fid)
    jit_hours_by = defaultdict(float)
    for (_user, target), ivs in jit_pairs.items():
        if len(ivs) == 1:  # the common case: one grant, nothing to merge
            s0, e0 = ivs[0]
            jit_hours_by[target] += max(0.0, min(e0, hi) - max(s0, lo)) / 3600
        else:
            jit_hours_by[target] += _hours(ivs, lo, hi)
    st_hours_by = defaultdict(float)
    for (_sid, target), ivs in st_pairs.items():
        st_hours_by[target] += _hours(ivs, lo, hi)

    any_data = bool(grants or standing or scanned)
    jit_n, st_n = len(jit_pairs), len(st_pairs)
    jit_h, st_h = round(sum(jit_hours_by.values()), 1), round(sum(st_hours_by.values()), 1)
    all_grants = [g[0] for g in grants]
    all_standing = [f for ids in st_ids.values() for f in ids]
    grant_fallback = range_query("activated_at", scope)
    figures = [
        Figure("jit_principals", "Rights held through JIT", jit_n if any_data else None,
               records=records("elevation.grant", all_grants, fallback=grant_fallback)),
        Figure("standing_principals", "Standing rights (scanned servers)", st_n if scanned else None,
               records=records("elevation.standingadmin", all_standing)),
        Figure("jit_share_pct", "Share of rights held through JIT", pct(jit_n, jit_n + st_n) if scanned else None,
               unit="%"),
        Figure("jit_principal_hours", "Principal-hours through JIT", jit_h if any_data else None, unit="h"),
        Figure("standing_principal_hours", "Standing principal-hours (scanned servers)", st_h if scanned else None,
               unit="h"),
        Figure("jit_hours_share_pct", "Share of principal-hours through JIT",
               pct(jit_h, jit_h + st_h) if scanned else None, unit="%"),
    ]
    jit_count = Counter(t for _u, t in jit_pairs)
    st_count = Counter(t for _s, t in st_pairs)
    # The servers with the most standing rights first (then the most JIT), at most MAX_ROWS of them.
    order = sorted(scanned, key=lambda t: (-st_count[t], -jit_count[t], t))[:MAX_ROWS]
    names = dict(Target.objects.filter(id__in=order).values_list("id", "name"))
    rows, recs = [], {}
    for target in order:
        j, s = jit_count[target], st_count[target]
        rows.append({"target": names.get(target, str(target)), "jit_principals": j, "standing_principals": s,
                     "jit_share_pct": pct(j, j + s), "jit_hours": round(jit_hours_by[target], 1),
                     "standing_hours": round(st_hours_by[target], 1)})
        recs[len(rows) - 1] = records("elevation.grant", jit_ids[target]) or records("elevation.standingadmin",
                                                                                    st_ids[target])
    table = Table(
        key="servers", title="JIT and standing rights per scanned server (most standing first)",
        columns=[Column("target", "Server"), Column("jit_principals", "JIT rights"),
                 Column("standing_principals", "Standing rights"), Column("jit_share_pct", "JIT share", "%"),
                 Column("jit_hours", "JIT principal-hours", "h"), Column("standing_hours", "Standing principal-hours", "h")],
        rows=rows, chart=Chart("bar", "target", ("jit_principals", "standing_principals")),
        records={i: r for i, r in recs.items() if r is not None},
    )
    return Section("utilisation", "JIT utilisation", DEFINITION, figures, [table])
