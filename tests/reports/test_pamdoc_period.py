"""The document's --period reads spans as the Reports do, and date ranges with the end date excluded."""
from datetime import datetime, timedelta, timezone

import pytest

from jitad.reports.pamdoc.records import period_parse
from jitad.reports.period import PeriodError

NOW = datetime(2026, 12, 6, 10, 30, tzinfo=timezone.utc)


def test_spans_end_now_as_in_the_reports(settings):
    settings.JITAD_REPORT_PERIOD_DAYS = 14
    assert period_parse("12h", now=NOW).start == NOW - timedelta(hours=12)
    assert period_parse("2w", now=NOW).start == NOW - timedelta(weeks=2)
    default = period_parse(None, now=NOW)
    assert (default.start, default.end) == (NOW - timedelta(days=14), NOW)


def test_a_date_range_excludes_its_end_date():
    p = period_parse("2026-11-01..2026-12-01", now=NOW)
    assert (p.start, p.end) == (datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("text", ["forever", "2026-12-01..2026-11-01", "2026-12-01..2026-12-01", "2026-02-30..2026-03-02",
                                  "2020-01-01..2026-01-01", "0d"])
def test_bad_periods_say_what_works(text):
    with pytest.raises(PeriodError, match="date range works too"):
        period_parse(text, now=NOW)
