"""Durations as people write them, and the one timestamp format (jitad/humantime.py)."""
from datetime import datetime, timezone as dt_timezone

import pytest
from django.template import Context, Template

from jitad.humantime import DurationError, common_choices, minutes_input, minutes_text, parse_minutes, when


@pytest.mark.parametrize(("value", "minutes"), [
    ("90", 90), (90, 90), ("90m", 90), ("4h", 240), ("1h30m", 90), ("1h 30m", 90), ("1H30M", 90),
    ("1.5h", 90), ("2 hours 15 min", 135), ("1 h 30 min", 90), ("45 minutes", 45), ("PT1H30M", 90),
    ("pt45m", 45), ("PT2H", 120), (" 4h ", 240), ("1m", 1), ("366d".replace("366d", "8784h"), 527040),
])
def test_parse_good(value, minutes):
    assert parse_minutes(value) == minutes


@pytest.mark.parametrize(("value", "message"), [
    ("", "Enter a duration such as 4h, 90m or 1h30m."),
    ("   ", "Enter a duration such as 4h, 90m or 1h30m."),
    (None, "Enter a duration such as 4h, 90m or 1h30m."),
    (True, "Enter a duration such as 4h, 90m or 1h30m."),
    ([30], "Enter a duration such as 4h, 90m or 1h30m."),
    (1.5, "Enter a duration such as 4h, 90m or 1h30m."),
    ("0", "A duration must be at least one minute."),
    (0, "A duration must be at least one minute."),
    (-5, "A duration must be at least one minute."),
    ("0h0m", "A duration must be at least one minute."),
    ("1h30", "'1h30' is not a duration such as 4h, 90m or 1h30m."),
    ("30x", "'30x' is not a duration such as 4h, 90m or 1h30m."),
    ("-5m", "'-5m' is not a duration such as 4h, 90m or 1h30m."),
    ("1h1h", "'1h1h' is not a duration such as 4h, 90m or 1h30m."),
    ("h", "'h' is not a duration such as 4h, 90m or 1h30m."),
    ("PT", "'PT' is not a duration such as 4h, 90m or 1h30m."),
    ("1.2.3h", "'1.2.3h' is not a duration such as 4h, 90m or 1h30m."),
    ("0.5m", "'0.5m' is not a whole number of minutes."),
    ("8785h", "'8785h' is longer than a year."),
    ("1" * 100, "Enter a duration such as 4h, 90m or 1h30m."),
])
def test_parse_bad(value, message):
    with pytest.raises(DurationError) as info:
        parse_minutes(value)
    assert str(info.value) == message


@pytest.mark.parametrize(("minutes", "text", "short"), [
    (1, "1 min", "1m"), (45, "45 min", "45m"), (60, "1 h", "1h"), (90, "1 h 30 min", "1h30m"), (240, "4 h", "4h"),
])
def test_written_forms_read_back(minutes, text, short):
    assert minutes_text(minutes) == text and minutes_input(minutes) == short
    assert parse_minutes(text) == parse_minutes(short) == minutes


def test_common_choices_stop_at_the_maximum():
    assert common_choices(240) == [15, 30, 60, 120, 240]
    assert common_choices(90) == [15, 30, 60, 90]
    assert common_choices(10) == [10]


def test_one_timestamp_format_in_the_configured_zone(settings):
    at = datetime(2026, 12, 5, 14, 30, 59, tzinfo=dt_timezone.utc)
    assert when(at) == "2026-12-05 14:30 UTC"
    settings.TIME_ZONE = "Europe/Berlin"
    assert when(at) == "2026-12-05 15:30 CET"
    assert when(datetime(2026, 7, 1, 12, 0, tzinfo=dt_timezone.utc)) == "2026-07-01 14:00 CEST"
    rendered = Template("{% load humantime %}{{ at|when }}|{{ at|timestamp }}|{{ n|minutes }}").render(
        Context({"at": at, "n": 90}))
    assert rendered == ('2026-12-05 15:30 CET|<time data-local datetime="2026-12-05T14:30:59+00:00">'
                        '2026-12-05 15:30 CET</time>|1 h 30 min')
