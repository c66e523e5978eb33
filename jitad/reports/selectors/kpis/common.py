"""What every KPI shares: the filter scope, records links, time arithmetic, percentiles, working hours."""
import gc
import math
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import F, FloatField, Func, Q
from django.utils import timezone

from jitad.elevation.models import Target

from ...figures import Records

# An id__in link longer than this would not fit a URL: the records then name a range instead.
MAX_IDS = 500
# Rows listed in a table of people or grants (the figure still counts them all).
MAX_ROWS = 200
ID_CHUNK = 10_000  # ids in one statement's IN list at most (PostgreSQL takes 65,535 bound parameters)


class Epoch(Func):
    """A timestamp as float seconds since 1970 (UTC), computed by the database: no datetime is built per row,
    which is what keeps 100,000 rows fast. SQLite: from the julian day (about a millisecond's resolution)."""

    output_field = FloatField()

    @property
    def convert_value(self):  # the database already answers a float (or NULL): no per-row converter
        return self._convert_value_noop

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"((julianday({sql}) - 2440587.5) * 86400.0)", params

    def as_postgresql(self, compiler, connection, **extra):
        # date_part answers double precision directly; EXTRACT (PostgreSQL 14+) builds a numeric per row first.
        # Both are the exact microsecond count over 10^6, correctly rounded: the same float.
        sql, params = compiler.compile(self.source_expressions[0])
        return f"date_part('epoch', {sql})", params

    def as_sql(self, compiler, connection, **extra):  # any other database that speaks EXTRACT
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(EXTRACT(EPOCH FROM {sql})::double precision)", params


class Elapsed(Func):
    """Seconds from the second timestamp to the first, as a float computed by the database."""

    output_field = FloatField()

    @property
    def convert_value(self):
        return self._convert_value_noop

    def as_sqlite(self, compiler, connection, **extra):
        (a, pa), (b, pb) = (compiler.compile(e) for e in self.source_expressions)
        return f"((julianday({a}) - julianday({b})) * 86400.0)", [*pa, *pb]

    def as_sql(self, compiler, connection, **extra):
        (a, pa), (b, pb) = (compiler.compile(e) for e in self.source_expressions)
        return f"(EXTRACT(EPOCH FROM ({a} - {b}))::double precision)", [*pa, *pb]


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector for a bounded computation, then restore it as it was.

    A report at 100,000 requests allocates a few hundred thousand row tuples, none of them in a
    cycle; each allocation burst would otherwise set off collections that walk every live object
    (all of Django's), about a third of report_build's own CPU time. Reference counting still frees
    everything; a cycle made meanwhile is collected once the collector runs again. Process-wide: a
    thread that finds it already paused leaves it to the one that paused it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def elapsed(later: str, earlier: str) -> Elapsed:
    """Seconds from the field ``earlier`` to the field ``later``, computed in SQL."""
    return Elapsed(F(later), F(earlier))


def moment(ts: float) -> datetime:
    """An epoch float back to an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=ZoneInfo("UTC"))


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
    # Rows several sections read (the period's grant intervals), fetched once per report.
    cache: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def filters(self) -> dict:
        return {k: v for k, v in (("tier", self.tier), ("target", self.target), ("policy", self.policy)) if v is not None}

    def _targets(self):
        qs = Target.objects.all()
        if self.tier is not None:
            qs = qs.filter(tier=self.tier)
        if self.target is not None:
            qs = qs.filter(name=self.target)
        if self.policy is not None:
            qs = qs.filter(policies__name=self.policy)
        return qs.order_by().values("id")

    def targets_q(self, prefix: str = "") -> Q:
        """A Q narrowing rows with a target to the scope's (``prefix`` "target__" or "": the row is a target)."""
        if self.target_ids is None:
            return Q()
        field = "target_id__in" if prefix == "target__" else f"{prefix}id__in"
        return Q(**{field: self._targets()})

    def requests_q(self, path: str = "") -> Q:
        """A Q narrowing requests (``path`` "") or rows reached through a request ("request__") to the scope."""
        q = Q(**{f"{path}target_id__in": self._targets()}) if self.target_ids is not None else Q()
        if self.policy is not None:
            q &= Q(**{f"{path}policy__name": self.policy})
        return q

    def grants_q(self) -> Q:
        """A Q narrowing grants to the scope (their own target; the policy through their request)."""
        q = self.targets_q("target__")
        if self.policy is not None:
            q &= Q(request__policy__name=self.policy)
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


def seconds(delta) -> float:
    """A timedelta or a number of seconds, rounded to a tenth."""
    return round(delta.total_seconds() if isinstance(delta, timedelta) else delta, 1)


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
    """JITAD_REPORT_WORK_* read in JITAD_REPORT_TIME_ZONE: is a moment within them, how many seconds of a span are.

    ``prepare(lo, hi)`` lays the period's working windows and local midnights out as sorted epoch
    seconds once, so each question about a row is a binary search, not a datetime built per row.
    """

    def __init__(self):
        self.tz = ZoneInfo(settings.JITAD_REPORT_TIME_ZONE)
        self.start_hour = settings.JITAD_REPORT_WORK_START_HOUR
        self.end_hour = settings.JITAD_REPORT_WORK_END_HOUR
        self.days = set(settings.JITAD_REPORT_WORK_DAYS)
        self.los: list[float] = []
        self.his: list[float] = []
        self.cum: list[float] = [0.0]  # working seconds before each window
        self.midnights: list[float] = []
        self.dates: list[date] = []

    def local_day(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()

    def _local(self, day: date, hours: int) -> float:
        return (datetime(day.year, day.month, day.day, tzinfo=self.tz) + timedelta(hours=hours)).timestamp()

    def prepare(self, lo: float, hi: float) -> "WorkingHours":
        """Lay out the working windows and local midnights of [lo, hi] (epoch seconds)."""
        day = moment(lo).astimezone(self.tz).date() - timedelta(days=1)
        last = moment(hi).astimezone(self.tz).date() + timedelta(days=1)
        while day <= last:
            self.midnights.append(self._local(day, 0))
            self.dates.append(day)
            if day.isoweekday() in self.days and self.end_hour > self.start_hour:
                self.los.append(self._local(day, self.start_hour))
                self.his.append(self._local(day, self.end_hour))
                self.cum.append(self.cum[-1] + self.his[-1] - self.los[-1])
            day += timedelta(days=1)
        return self

    def contains(self, ts: float) -> bool:
        """Is the moment ``ts`` (epoch seconds, within the prepared span) in working hours?"""
        i = bisect_right(self.los, ts) - 1
        return i >= 0 and ts < self.his[i]

    def _before(self, ts: float) -> float:
        """Working seconds from the prepared start up to ``ts``."""
        i = bisect_right(self.los, ts) - 1
        if i < 0:
            return 0.0
        return self.cum[i] + min(ts, self.his[i]) - self.los[i]

    def seconds_within(self, start: float, end: float) -> float:
        """Working seconds within [start, end) (epoch seconds, within the prepared span)."""
        return max(0.0, self._before(end) - self._before(start))

    def days_spanned(self, start: float, end: float) -> list[date]:
        """The local dates [start, end) touches."""
        i = max(0, bisect_right(self.midnights, start) - 1)
        j = max(i, bisect_left(self.midnights, end) - 1)
        return self.dates[i : j + 1]
