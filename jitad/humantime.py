"""Durations and timestamps as people read and write them: "1h30m" in, "1 h 30 min" and "2026-12-05 14:30 UTC" out.

One module so the portal, the admin, the API, the policy file and the mail agree:

* ``parse_minutes`` reads a duration: ``90`` (minutes, as before), ``90m``, ``4h``,
  ``1h30m``, ``1.5h``, ``2 hours 15 min``, or ISO 8601 ``PT1H30M``. Anything else raises
  ``DurationError`` with a message a person can act on.
* ``minutes_text`` writes one for reading ("1 h 30 min"); ``minutes_input`` writes the
  short form the parser reads back ("1h30m").
* ``when`` writes a timestamp in the configured zone (JITAD_TIME_ZONE), with the zone:
  "2026-12-05 14:30 UTC". ``WHEN_FORMAT`` is the same format for Django's ``date``
  filter and the admin (jitad/formats/); the portal's script rewrites it into the reader's
  own zone, in the same shape.

The template filters (``{% load humantime %}``) are registered at the bottom.
"""
import re
from decimal import Decimal, InvalidOperation

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html

# Django date format: 2026-12-05 14:30 UTC (T: the zone's abbreviation, or its offset).
WHEN_FORMAT = "Y-m-d H:i T"
# Far above any policy (a year), and far below any database integer limit.
MAX_MINUTES = 366 * 24 * 60
EXAMPLES = "such as 4h, 90m or 1h30m"

_UNITS = {
    "d": 1440, "day": 1440, "days": 1440,
    "h": 60, "hr": 60, "hrs": 60, "hour": 60, "hours": 60,
    "m": 1, "min": 1, "mins": 1, "minute": 1, "minutes": 1,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_ISO = re.compile(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+)M)?", re.IGNORECASE)


class DurationError(ValueError):
    """A duration that could not be read; ``str(e)`` says why, for the person who typed it."""


class DurationTooLong(DurationError):
    """A readable duration beyond any policy (more than a year)."""


def _whole(minutes: Decimal, shown: str) -> int:
    if minutes != minutes.to_integral_value():
        raise DurationError(f"{shown!r} is not a whole number of minutes.")
    value = int(minutes)
    if value < 1:
        raise DurationError("A duration must be at least one minute.")
    if value > MAX_MINUTES:
        raise DurationTooLong(f"{shown!r} is longer than a year.")
    return value


def _units(text: str, shown: str) -> Decimal:
    total, at = Decimal(0), 0
    seen = set()
    for match in _PART.finditer(text):
        if text[at:match.start()].strip():
            break
        number, unit = match.groups()
        if unit not in _UNITS or _UNITS[unit] in seen:
            raise DurationError(f"{shown!r} is not a duration {EXAMPLES}.")
        seen.add(_UNITS[unit])
        total += Decimal(number) * _UNITS[unit]
        at = match.end()
    if not seen or text[at:].strip():
        raise DurationError(f"{shown!r} is not a duration {EXAMPLES}.")
    return total


def parse_minutes(value) -> int:
    """Whole minutes from ``value``: an int, digits (minutes), "4h", "90m", "1h30m", "1.5h" or "PT1H30M".

    Raises DurationError for anything else, for zero, for fractions of a minute and for
    more than a year.
    """
    if isinstance(value, bool):
        raise DurationError(f"Enter a duration {EXAMPLES}.")
    if isinstance(value, int):
        return _whole(Decimal(value), str(value))
    if not isinstance(value, str):
        raise DurationError(f"Enter a duration {EXAMPLES}.")
    shown = value.strip()[:40]
    text = value.strip().lower()
    if not text:
        raise DurationError(f"Enter a duration {EXAMPLES}.")
    if len(text) > 40:
        raise DurationError(f"Enter a duration {EXAMPLES}.")
    try:
        if text.isdigit():
            return _whole(Decimal(text), shown)
        iso = _ISO.fullmatch(text)
        if iso and (iso.group(1) or iso.group(2)):
            hours, minutes = iso.groups()
            return _whole(Decimal(hours or 0) * 60 + Decimal(minutes or 0), shown)
        return _whole(_units(text, shown), shown)
    except InvalidOperation as e:
        raise DurationError(f"{shown!r} is not a duration {EXAMPLES}.") from e


def minutes_text(minutes) -> str:
    """``90`` -> "1 h 30 min"; ``240`` -> "4 h"; ``45`` -> "45 min"."""
    hours, rest = divmod(int(minutes), 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


def minutes_input(minutes) -> str:
    """``90`` -> "1h30m"; ``240`` -> "4h"; ``45`` -> "45m": what ``parse_minutes`` reads back."""
    hours, rest = divmod(int(minutes), 60)
    if not hours:
        return f"{rest}m"
    return f"{hours}h" + (f"{rest}m" if rest else "")


def common_choices(maximum: int) -> list[int]:
    """The usual lengths (minutes) up to ``maximum``, and ``maximum`` itself: for a form's suggestions."""
    usual = [15, 30, 60, 120, 240, 480, 720, 1440]
    return sorted({m for m in usual if m < maximum} | {int(maximum)}) if maximum >= 1 else []


def when(value) -> str:
    """A timestamp as everyone sees it: "2026-12-05 14:30 UTC", in the configured zone."""
    if value is None:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return date_format(value, WHEN_FORMAT)


# -- template filters ---------------------------------------------------------------------------
register = template.Library()


@register.filter(name="when")
def when_filter(value) -> str:
    """``{{ grant.expires_at|when }}`` -> 2026-12-05 14:30 UTC."""
    return when(value) if value else ""


@register.filter
def timestamp(value):
    """``{{ grant.expires_at|timestamp }}``: a <time> element the portal's script shows in the reader's zone."""
    if not value:
        return ""
    return format_html('<time data-local datetime="{}">{}</time>', value.isoformat(), when(value))


@register.filter
def minutes(value) -> str:
    """``{{ policy.max_duration_minutes|minutes }}`` -> 4 h."""
    try:
        return minutes_text(value)
    except (TypeError, ValueError):
        return ""
