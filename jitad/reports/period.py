"""A report's period as people write it: "30d", "12h", "2w" (or "90m"), ending now, or an explicit start and end."""
import re
from datetime import datetime, time, timedelta, timezone as dt_timezone

from django.conf import settings
from django.utils import timezone

# A report spans at most this long: further back, the work and the page grow without telling more.
MAX_SPAN = timedelta(days=731)
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_PERIOD = re.compile(r"(\d{1,6})\s*([mhdw])")
EXAMPLES = "such as 30d, 12h or 2w"


def default_period() -> str:
    """The period when none is chosen: JITAD_REPORT_PERIOD_DAYS (30) days, as "30d"."""
    return f"{int(getattr(settings, 'JITAD_REPORT_PERIOD_DAYS', 30))}d"


class PeriodError(ValueError):
    """A period or a start/end that cannot be a report's; ``str(e)`` says why, for the person who typed it."""


def parse_period(text: str) -> timedelta:
    """``"30d"`` -> 30 days; ``"12h"``, ``"2w"``, ``"90m"``; raises PeriodError for anything else."""
    value = (text or "").strip().lower()
    match = _PERIOD.fullmatch(value)
    if not match:
        raise PeriodError(f"{str(text)[:20]!r} is not a period {EXAMPLES}.")
    span = int(match.group(1)) * _UNITS[match.group(2)]
    if span <= timedelta(0):
        raise PeriodError("A period must be longer than zero.")
    if span > MAX_SPAN:
        raise PeriodError("A period can be at most two years.")
    return span


def as_aware(value) -> datetime:
    """A date (its midnight, UTC) or a datetime (UTC if naive) as an aware datetime."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt_timezone.utc)
    return value


def period_resolve(*, period: str | None = None, start=None, end=None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """(start, end) from a period ending ``end`` (default now) or from an explicit start (and end).

    A date as ``end`` includes that whole day; a date as ``start`` begins at its midnight (UTC).
    """
    now = now or timezone.now()
    if end is not None and not isinstance(end, datetime):
        end = datetime.combine(end, time.min) + timedelta(days=1)  # an end date is included, whole
    end_at = as_aware(end) if end is not None else now
    if start is not None:
        if period:
            raise PeriodError("Give either a period or a start date, not both.")
        start_at = as_aware(start)
    else:
        start_at = end_at - parse_period(period or default_period())
    if start_at >= end_at:
        raise PeriodError("The start must be before the end.")
    if end_at - start_at > MAX_SPAN:
        raise PeriodError("A report can span at most two years.")
    return start_at, end_at
