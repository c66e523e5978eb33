"""Standing access reduction: baseline (first scan + first group reading), now (live findings and held members), trend."""
from datetime import date

import pytest
from django.utils import timezone

from jitad.elevation.models import HeldRemoval
from jitad.elevation.signals import group_read
from jitad.reports.models import DailySnapshot, RightBaseline
from jitad.reports.selectors.kpis import report_build
from jitad.reports.services.snapshots import baselines_from_scans

from .rows import at, scan, standing_admin, target

pytestmark = pytest.mark.django_db


def _estate():
    a = target("SRV-A", tier=1, policy="servers")
    b = target("DA", tier=0, policy="tier0")
    scan(a, when=at(0), standing=4)
    scan(a, when=at(10), standing=1)
    for i in range(4):
        standing_admin(a, f"S-1-5-21-1-{i}", first_seen=at(0), resolved=at(5) if i else None)
    group_read.send(sender=None, group_dn=b.group_dn, members=5, unbacked=3, read_at=at(0))
    group_read.send(sender=None, group_dn=b.group_dn, members=9, unbacked=9, read_at=at(3))  # not the first
    HeldRemoval.objects.create(group_dn=b.group_dn, member_dn="CN=x", member_key="cn=x",
                               batch="00000000-0000-0000-0000-000000000001")
    baselines_from_scans()
    return a, b


def _figures(report):
    return tuple(report.figure("standing", k).value for k in ("baseline", "now", "reduction_pct"))


def test_baseline_now_and_reduction_by_filter():
    """GIVEN a server first scanned with 4 standing admins (1 still open) and a tier-0 group first read with
    3 unbacked members (1 still held)
    WHEN the report runs over a period ending now, unfiltered and by tier, target and policy
    THEN baseline 7 → now 2 (71.4 %), tier 1: 4 → 1 (75 %), target DA: 3 → 1, policy servers like tier 1."""
    _estate()
    now = timezone.now()
    assert _figures(report_build(start=at(0), end=now)) == (7, 2, 71.4)
    assert _figures(report_build(start=at(0), end=now, tier=1)) == (4, 1, 75.0)
    assert _figures(report_build(start=at(0), end=now, target="DA")) == (3, 1, 66.7)
    assert _figures(report_build(start=at(0), end=now, policy="servers")) == (4, 1, 75.0)
    assert _figures(report_build(start=at(0), end=now, target="nope")) == (None, None, None)


def test_first_reading_and_first_scan_are_kept():
    a, b = _estate()
    scan(a, when=at(-1), standing=9)  # found later, but older: the first scan is recomputed only when missing
    baselines_from_scans()
    assert RightBaseline.objects.get(group_dn=a.group_dn).first_scan_standing == 4
    base = RightBaseline.objects.get(group_dn=b.group_dn)
    assert (base.first_reading_members, base.first_reading_unbacked, base.target) == (5, 3, b)


def test_nothing_known_is_none_not_zero():
    target("SRV-Z")
    assert _figures(report_build(start=at(0), end=timezone.now())) == (None, None, None)


def test_trend_from_snapshots_and_a_past_period_uses_its_last_day():
    a, b = _estate()
    for d, n in ((2, 4), (3, 2), (4, 1)):
        DailySnapshot.objects.create(day=date(2026, 11, 1 + d), target=a, tier=1, standing_principals=n,
                                     jit_principals=d, jit_principal_hours=1.5)
        DailySnapshot.objects.create(day=date(2026, 11, 1 + d), target=b, tier=0, standing_principals=None)
    report = report_build(start=at(0), end=at(4))  # the period ends before today: the last snapshot day
    trend = report.section("standing").tables[0]
    assert [r["standing"] for r in trend.rows] == [4, 2, 1]
    assert [r["day"] for r in trend.rows] == ["2026-11-03", "2026-11-04", "2026-11-05"]
    assert trend.records[0].model == "reports.dailysnapshot" and trend.records[0].query == {"day": "2026-11-03"}
    assert _figures(report) == (7, 1, 85.7)
