"""What every KPI shares: the filter scope, records links, time arithmetic, percentiles, working hours."""
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jitad.elevation.models import Target

from ...figures import Records

# An id__in link longer than this would not fit a URL: the records then name a range instead.
MAX_IDS = 500
# Rows listed in a table of people or grants (the figure still counts them all).
MAX_ROWS = 200


@dataclass(frozen=True)
class Scope:
    """The period and the filters, resolved once: ``target_ids`` is None when no filter narrows targets."""

    start: datetime
    end: datetime
    now: datetime
    tier: int | None
    target: str | None
    policy: str | None
    target_ids: frozenset | None

    @property
    def filters(self) -> dict:
        return {k: v for k, v in (("tier", self.tier), ("target", self.target), ("policy", self.policy)) if v is not None}

    def targets_q(self, prefix: str = "") -> Q:
        """A Q narrowing rows to the scope's targets through ``prefix`` (e.g. "target__")."""
        if self.target_ids is None:
            return Q()
        return Q(**{f"{prefix}id__in": sorted(self.target_ids)})

    def requests_q(self, prefix: str = "") -> Q:
        """A Q narrowing requests (``prefix`` "" ) or grants (``prefix`` "request__") to the scope."""
        q = self.targets_q(f"{prefix}target__")
        if self.policy is not None:
            q &= Q(**{f"{prefix}policy__name": self.policy})
        return q


def scope_build(*, start, end, tier=None, target=None, policy=None) -> Scope:
    """Resolve the filters to target ids (one query when any filter is set)."""
    now = timezone.now()
    ids = None
    if tier is not None or target is not None or policy is not None:
        qs = Target.objects.all()
        if tier is not None:
            qs = qs.filter(tier=int(tier))
        if target is not None:
            qs = qs.filter(name=target)
        if policy is not None:
            qs = qs.filter(policies__name=policy)
        ids = frozenset(qs.values_list("id", flat=True))
    return Scope(start=start, end=end, now=now, tier=None if tier is None else int(tier), target=target,
                 policy=policy, target_ids=ids)


# Changelists whose default filter would hide some of the rows named: ask for all of them.
SHOW_ALL = {
    "elevation.grant": {"view": "all"},
    "elevation.accessrequest": {"queue": "all"},
    "elevation.standingadmin": {"status": "all"},
}


def records(model: str, ids, *, fallback: dict | None = None) -> Records | None:
    """Records naming ``ids`` (id__in), or ``fallback`` lookups when there are too many for a link."""
    ids = sorted(set(ids))
    if not ids:
        return None
    extra = SHOW_ALL.get(model, {})
    if len(ids) > MAX_IDS and fallback is not None:
        return Records(model=model, query={**extra, **fallback}, count=len(ids))
    # Beyond MAX_IDS without a fallback the link names the first MAX_IDS; ``count`` says how many there are.
    return Records(model=model, query={**extra, "id__in": ",".join(str(i) for i in ids[:MAX_IDS])}, count=len(ids))


def range_query(field: str, scope: Scope) -> dict:
    """Admin changelist lookups for ``field`` within the period."""
    return {f"{field}__gte": scope.start.isoformat(), f"{field}__lt": scope.end.isoformat()}


def pct(part, whole) -> float | None:
    """``part`` as a percentage of ``whole`` (one decimal); None when ``whole`` is 0 or unknown."""
    if part is None or not whole:
        return None
    return round(100.0 * part / whole, 1)


def percentile(sorted_values: list, p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of an ascending list; None when it is empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 1)


def overlap_seconds(a_start, a_end, b_start, b_end) -> float:
    """Seconds two intervals share (0 when they do not meet)."""
    lo, hi = max(a_start, b_start), min(a_end, b_end)
    return max(0.0, (hi - lo).total_seconds())


def merge(intervals) -> list[tuple]:
    """Sorted, non-overlapping union of (start, end) intervals: overlapping grants count once."""
    out: list[list] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def bucket(value: float, edges: list[tuple[float, str]]) -> str:
    """The label of the first bucket whose upper edge exceeds ``value`` (the last label beyond)."""
    for upper, label in edges:
        if value < upper:
            return label
    return edges[-1][1]


def histogram(values, edges: list[tuple[float, str]]) -> dict[str, int]:
    """Counts per bucket label, every label present (in order)."""
    counts = {label: 0 for _, label in edges}
    for v in values:
        counts[bucket(v, edges)] += 1
    return counts


# Upper edges in seconds: approval times, lateness.
DURATION_EDGES = [(60, "< 1 min"), (300, "1–5 min"), (900, "5–15 min"), (3600, "15–60 min"),
                  (4 * 3600, "1–4 h"), (math.inf, "≥ 4 h")]


class WorkingHours:
    """JITAD_REPORT_WORK_* read in JITAD_REPORT_TIME_ZONE: is a moment within them, how many seconds of a span are."""

    def __init__(self):
        self.tz = ZoneInfo(settings.JITAD_REPORT_TIME_ZONE)
        self.start_hour = settings.JITAD_REPORT_WORK_START_HOUR
        self.end_hour = settings.JITAD_REPORT_WORK_END_HOUR
        self.days = set(settings.JITAD_REPORT_WORK_DAYS)

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.tz)
        return local.isoweekday() in self.days and self.start_hour <= local.hour < self.end_hour

    def windows(self, start: datetime, end: datetime):
        """The working windows (aware datetimes) meeting [start, end)."""
        day = self.local_day(start)
        last = self.local_day(end)
        while day <= last:
            if day.isoweekday() in self.days:
                lo = datetime(day.year, day.month, day.day, self.start_hour, tzinfo=self.tz)
                hi = datetime(day.year, day.month, day.day, 0, tzinfo=self.tz) + timedelta(hours=self.end_hour)
                if hi > start and lo < end:
                    yield max(lo, start), min(hi, end)
            day += timedelta(days=1)

    def seconds_within(self, start: datetime, end: datetime) -> float:
        return sum((hi - lo).total_seconds() for lo, hi in self.windows(start, end))
