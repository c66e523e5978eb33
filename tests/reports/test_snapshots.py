"""Daily snapshots: back-filled from the records on the first run, recorded once per (day, target), never rewritten."""
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jitad.reports.models import DailySnapshot, RightBaseline
from jitad.reports.services.snapshots import snapshots_record
from jitad.reports.tasks.snapshots import snapshots_record_task

from .rows import at, grant, person, scan, standing_admin, target

pytestmark = pytest.mark.django_db
TODAY = date(2026, 11, 9)  # at(7)


def _estate():
    a, b = target("SRV-A"), target("SRV-B")
    scan(a, when=at(2, 12), standing=2)
    standing_admin(a, "S-1", first_seen=at(1, 12))
    standing_admin(a, "S-2", first_seen=at(1, 12), resolved=at(4, 6))
    u, v = person("u"), person("v")
    grant(u, a, activated=at(0, 9), expires=at(0, 11), revoked=at(0, 11))
    grant(u, a, activated=at(0, 10), expires=at(0, 12), revoked=at(0, 12))  # overlaps: 3 h in all
    grant(v, a, activated=at(3, 23), expires=at(4, 1), revoked=at(4, 1))  # across midnight: 1 h each day
    return a, b


def _row(day, t):
    return DailySnapshot.objects.get(day=day, target=t)


def test_backfill_from_the_records_then_idempotent():
    """GIVEN grants from 2 November, a first scan on the 4th, standing admins seen from the 3rd, one gone on the 6th
    WHEN the snapshot runs on the 9th (twice), then on the 10th
    THEN days 2-8 are back-filled with known values, a row where something is known (a scan, someone elevated):
    standing None before the first scan, no row for a day or a target with nothing; the second run adds
    nothing; the next day adds its row."""
    a, b = _estate()
    assert snapshots_record(today=TODAY) == 6
    assert DailySnapshot.objects.count() == 6
    assert not DailySnapshot.objects.filter(target=b).exists()
    assert not DailySnapshot.objects.filter(day=date(2026, 11, 3)).exists()
    first = _row(date(2026, 11, 2), a)
    assert (first.jit_principals, first.jit_principal_hours, first.grants_started, first.standing_principals) == (
        1, 3.0, 2, None)
    day4 = _row(date(2026, 11, 4), a)
    assert (day4.standing_principals, day4.standing_principal_hours) == (2, 48.0)
    assert (_row(date(2026, 11, 5), a).jit_principal_hours, _row(date(2026, 11, 6), a).jit_principal_hours) == (1.0, 1.0)
    assert _row(date(2026, 11, 6), a).standing_principals == 1
    assert RightBaseline.objects.get(target=a).first_scan_standing == 2

    with CaptureQueriesContext(connection) as q:
        assert snapshots_record(today=TODAY) == 0
    assert len(q) <= 8
    DailySnapshot.objects.filter(day=date(2026, 11, 4), target=a).update(jit_principals=99)
    assert snapshots_record(today=TODAY + timedelta(days=1)) == 1
    assert _row(date(2026, 11, 4), a).jit_principals == 99  # a recorded day is never rewritten


def test_nothing_to_record_and_the_task():
    assert snapshots_record(today=TODAY) == 0
    _estate()
    assert snapshots_record_task() > 0  # the beat task: today's date, every missing finished day


def test_snapshots_feed_the_standing_trend():
    from jitad.reports.selectors.kpis import report_build

    a, _b = _estate()
    snapshots_record(today=TODAY)
    trend = report_build(start=at(0), end=at(7), target="SRV-A").section("standing").tables[0].rows
    assert [(r["day"][-2:], r["standing"], r["jit"]) for r in trend] == [
        ("02", None, 1), ("04", 2, 0), ("05", 2, 1), ("06", 1, 1), ("07", 1, 0), ("08", 1, 0)]
