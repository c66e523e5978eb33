"""Standing access reduction: standing privileged principals now against the baseline, and the daily trend."""
from datetime import timedelta

from django.db.models import Q, Sum

from jitad.elevation.models import HeldRemoval, StandingAdmin, Target

from ...figures import Chart, Column, Figure, Records, Section, Table
from ...models import DailySnapshot, RightBaseline
from .common import MAX_IDS, Scope, pct, records

DEFINITION = (
    "Standing privileged principals: open standing-admin findings on the servers (local Administrators "
    "members no grant explains) plus members of JIT groups no grant backs that are still there (held "
    "removals not yet removed). Baseline: each target's first successful scan plus the reconciler's "
    "first reading of its group. Reduction = (baseline − now) / baseline."
)


def _baseline(scope: Scope):
    rows = list(RightBaseline.objects.filter(scope.targets_q("target__")).order_by()
                .values_list("id", "first_scan_standing", "first_reading_unbacked"))
    known = [(i, s, r) for i, s, r in rows if s is not None or r is not None]
    if not known:
        return None, []
    return sum((s or 0) + (r or 0) for _i, s, r in known), [i for i, _s, _r in known]


def _now_live(scope: Scope):
    """Open standing admins and unbacked group members still present, now."""
    admins = list(StandingAdmin.objects.filter(scope.targets_q("target__"), resolved_at__isnull=True)
                  .values_list("id", flat=True))
    held_q = Q(state__in=HeldRemoval.OPEN_STATES) | Q(state=HeldRemoval.State.DISCARDED, left_at__isnull=True)
    if scope.target_ids is not None:
        groups = list(Target.objects.filter(id__in=scope.target_ids).values_list("group_dn", flat=True))
        held_q &= Q(group_dn__in=groups)
    held = list(HeldRemoval.objects.filter(held_q).values_list("id", flat=True))
    return admins, held


def _trend(scope: Scope):
    """Per day of the period: the snapshots' sums over the scope's targets."""
    rows = (DailySnapshot.objects.filter(scope.targets_q("target__"), day__gte=scope.start.date(),
                                         day__lte=(scope.end - timedelta(microseconds=1)).date())
            .values("day").annotate(standing=Sum("standing_principals"), jit=Sum("jit_principals"),
                                    jit_hours=Sum("jit_principal_hours")).order_by("day"))
    return [{"day": r["day"].isoformat(), "standing": r["standing"], "jit": r["jit"],
             "jit_hours": round(r["jit_hours"] or 0.0, 1)} for r in rows]


def section(scope: Scope) -> Section:
    """The standing section: baseline, now, reduction_pct; the trend from daily snapshots."""
    baseline, base_ids = _baseline(scope)
    live = scope.end >= scope.now - timedelta(days=1)  # a period ending now (or today): the live records
    trend = _trend(scope)
    if live:
        admins, held = _now_live(scope)
        now = len(admins) + len(held) if (baseline is not None or admins or held) else None
        now_records = (records("elevation.standingadmin", admins, fallback={"status": "open"}) if admins
                       else records("elevation.heldremoval", held))
    else:  # a period ending in the past: the last snapshot of the period
        last = [r for r in trend if r["standing"] is not None]
        now = last[-1]["standing"] if last else None
        now_records = None
    reduction = None if baseline is None or now is None else pct(baseline - now, baseline)
    figures = [
        Figure("baseline", "Standing principals at the baseline", baseline,
               records=records("reports.rightbaseline", base_ids)),
        Figure("now", "Standing principals now" if live else "Standing principals at the end of the period", now,
               records=now_records),
        Figure("reduction_pct", "Reduction since the baseline", reduction, unit="%"),
    ]
    table = Table(
        key="trend", title="Standing principals and JIT holders per day",
        columns=[Column("day", "Day"), Column("standing", "Standing principals"),
                 Column("jit", "People elevated through JIT"), Column("jit_hours", "JIT principal-hours", "h")],
        rows=trend, chart=Chart("line", "day", ("standing", "jit")),
    )
    for i, row in enumerate(trend):
        table.records[i] = records_for_day(row["day"], scope)
    return Section("standing", "Standing access reduction", DEFINITION, figures, [table])


def records_for_day(day: str, scope: Scope):
    """The snapshot rows behind one day of the trend."""
    query = {"day": day}
    if scope.target_ids is not None:
        if len(scope.target_ids) <= MAX_IDS or scope.tier is None:
            query["target_id__in"] = ",".join(str(i) for i in sorted(scope.target_ids)[:MAX_IDS])
        else:  # a whole tier: the snapshots carry it
            query["tier"] = str(scope.tier)
    return Records(model="reports.dailysnapshot", query=query)
