"""Daily snapshots of each target's privileged access, and the baseline of each managed right.

A day (UTC) is recorded once, after it ends; a later run never rewrites it, so a trend keeps
what was known on the day even when records are purged. The first run back-fills every
day since the oldest record (at most JITAD_REPORT_BACKFILL_DAYS, default 400) from the
grants, scans and standing-admin findings still in the database.
"""
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import Max, Min, OuterRef, Subquery
from django.utils import timezone

from jitad.elevation.models import Grant, HostScan, StandingAdmin, Target

from ..models import DailySnapshot, RightBaseline
from ..selectors.kpis.common import merge
from ..selectors.kpis.intervals import first_scans, grant_intervals, standing_intervals

BACKFILL_DAYS = 400
CHUNK_DAYS = 31


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _utc_day(ts: float) -> date:
    return datetime.fromtimestamp(ts, tz=dt_timezone.utc).date()


def _spanned_days(start: float, end: float, lo: date, hi: date):
    day = max(_utc_day(start), lo)
    last = min(_utc_day(end), hi)
    while day <= last:
        yield day
        day += timedelta(days=1)


def snapshots_compute(days: list[date], *, now: datetime | None = None) -> list[DailySnapshot]:
    """Unsaved snapshots of every target for ``days`` (consecutive, finished), from four queries."""
    now = now or timezone.now()
    first, last = min(days), max(days)
    lo, hi = day_start(first), day_start(last + timedelta(days=1))
    lo_s, hi_s = lo.timestamp(), hi.timestamp()
    tiers = dict(Target.objects.values_list("id", "tier"))
    scanned = first_scans(hi)
    jit: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    started: dict[tuple, int] = defaultdict(int)
    for _id, user, target, start, end in grant_intervals(lo, hi, now):
        if lo_s <= start < hi_s:
            started[(_utc_day(start), target)] += 1
        for day in _spanned_days(start, end, first, last):
            d0, d1 = day_start(day).timestamp(), day_start(day + timedelta(days=1)).timestamp()
            jit[(day, target)][user].append((max(start, d0), min(end, d1)))
    standing_now: dict[tuple, int] = defaultdict(int)
    standing_hours: dict[tuple, float] = defaultdict(float)
    for _id, target, _sid, start, end in standing_intervals(lo, hi, now):
        for day in _spanned_days(start, end, first, last):
            d0, d1 = day_start(day).timestamp(), day_start(day + timedelta(days=1)).timestamp()
            standing_hours[(day, target)] += max(0.0, min(end, d1) - max(start, d0)) / 3600
            if start < d1 and end >= d1:
                standing_now[(day, target)] += 1
    rows = []
    for day in days:
        d1 = day_start(day + timedelta(days=1)).timestamp()
        for target, tier in tiers.items():
            known = target in scanned and scanned[target] < d1
            people = jit.get((day, target), {})
            hours = sum(e - s for ivs in people.values() for s, e in merge(ivs)) / 3600
            if not known and not people:
                continue  # nothing known about this target that day: no row (a trend sums what exists)
            rows.append(DailySnapshot(
                day=day, target_id=target, tier=tier,
                standing_principals=standing_now.get((day, target), 0) if known else None,
                standing_principal_hours=round(standing_hours.get((day, target), 0.0), 3) if known else None,
                jit_principals=len(people), jit_principal_hours=round(hours, 3),
                grants_started=started.get((day, target), 0), recorded_at=now,
                backfilled=(now.date() - day).days > 1,
            ))
    return rows


def _oldest_record() -> date | None:
    candidates = [
        Grant.objects.aggregate(m=Min("activated_at"))["m"],
        HostScan.objects.aggregate(m=Min("started_at"))["m"],
        StandingAdmin.objects.aggregate(m=Min("first_seen_at"))["m"],
    ]
    known = [c for c in candidates if c is not None]
    return min(known).astimezone(dt_timezone.utc).date() if known else None


def baselines_from_scans() -> int:
    """Record the first successful scan of each target as its standing baseline (once); how many were new."""
    have = RightBaseline.objects.filter(first_scan_at__isnull=False, target__isnull=False).values("target_id")
    first = HostScan.objects.filter(target_id=OuterRef("target_id"), ok=True).order_by("started_at", "id").values("id")[:1]
    scans = list(HostScan.objects.filter(ok=True).exclude(target_id__in=have).filter(id=Subquery(first))
                 .select_related("target"))
    for scan in scans:
        base, _ = RightBaseline.objects.get_or_create(group_dn=scan.target.group_dn, defaults={"target": scan.target})
        RightBaseline.objects.filter(pk=base.pk, first_scan_at__isnull=True).update(
            target=scan.target, first_scan_at=scan.started_at, first_scan_standing=scan.standing, first_scan_id=scan.pk)
    return len(scans)


def baseline_reading_record(*, group_dn: str, members: int, unbacked: int, read_at, **kwargs) -> None:
    """The reconciler read a managed group (``jitad.elevation.signals.group_read``): keep the first reading."""
    if RightBaseline.objects.filter(group_dn__iexact=group_dn, first_reading_at__isnull=False).exists():
        return
    target = Target.objects.filter(group_dn__iexact=group_dn).first()
    with transaction.atomic():
        base = RightBaseline.objects.filter(group_dn__iexact=group_dn).first()
        if base is None:
            base, _ = RightBaseline.objects.get_or_create(group_dn=group_dn[:512], defaults={"target": target})
        RightBaseline.objects.filter(pk=base.pk, first_reading_at__isnull=True).update(
            target=base.target or target, first_reading_at=read_at, first_reading_members=members,
            first_reading_unbacked=unbacked)


def snapshots_record(*, today: date | None = None) -> int:
    """Record every finished day not yet recorded (back-filling since the oldest record); how many rows were added.

    Idempotent: days up to the latest recorded one are left as they are (the unique constraint
    settles two runs racing), so running it hourly costs a few small queries once the day is done.
    A target with nothing known that day (no scan yet, nobody elevated) has no row.
    """
    now = timezone.now()
    today = today or now.astimezone(dt_timezone.utc).date()
    baselines_from_scans()
    yesterday = today - timedelta(days=1)
    oldest = _oldest_record()
    if oldest is None or oldest > yesterday:
        return 0
    first = max(oldest, today - timedelta(days=BACKFILL_DAYS))
    latest = DailySnapshot.objects.aggregate(m=Max("day"))["m"]
    if latest is not None:  # recorded up to ``latest``: only the days since (a day with nothing to say has no rows)
        first = max(first, latest + timedelta(days=1))
    missing = _days_between(first, yesterday) if first <= yesterday else []
    added = 0
    for i in range(0, len(missing), CHUNK_DAYS):
        chunk = missing[i : i + CHUNK_DAYS]
        rows = snapshots_compute(chunk, now=now)
        with transaction.atomic():  # a chunk lands whole: an interrupted run resumes after its last full day
            DailySnapshot.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        added += len(rows)
    return added
