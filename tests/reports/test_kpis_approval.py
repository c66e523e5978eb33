"""Approval time: request → decision and → active (nearest-rank percentiles), automatic against manual, by group."""
from datetime import timedelta

import pytest

from jitad.elevation.models import AccessRequest, Grant
from jitad.reports.selectors.kpis import report_build

from .rows import at, person, request, target

pytestmark = pytest.mark.django_db
S = AccessRequest.State


def _active(r, after_s):
    return Grant.objects.create(request=r, user=r.requester, target=r.target, group_dn=r.target.group_dn,
                                state=Grant.State.ACTIVE, activated_at=r.created_at + timedelta(seconds=after_s),
                                expires_at=r.created_at + timedelta(hours=1))


def _estate():
    t = target("SRV-A", policy="servers")
    other = target("SRV-B", policy="other")
    u, ann, ben = person("u"), person("ann"), person("ben")
    c = at(1, 9)
    r1 = request(u, t, created=c, decided=c + timedelta(seconds=2))  # automatic
    _active(r1, 5)
    r2 = request(u, t, created=c, decided=c + timedelta(seconds=100), approvers=[(ann, c + timedelta(seconds=100))],
                 groups=["G1"])
    _active(r2, 103)
    request(u, t, created=c, state=S.DENIED, decided=c + timedelta(seconds=300),
            approvers=[(ben, c + timedelta(seconds=300))], groups=["G2"])
    request(u, t, created=c, state=S.EXPIRED_UNAPPROVED)
    request(u, t, created=c, state=S.CANCELLED, decided=c + timedelta(seconds=9))
    request(u, t, created=at(-1), decided=at(-1) + timedelta(seconds=7000))  # before the period
    request(u, other, created=c, decided=c + timedelta(seconds=50000))  # another policy and target


def test_percentiles_counts_and_groups():
    """GIVEN decisions after 2 s (automatic), 100 s (G1) and 300 s (G2, a denial), grants active after 5 s and
    103 s, one request timed out, one cancelled, one outside the period, and one on another policy
    WHEN the report is narrowed to the policy
    THEN decision p50/p95/max = 100/300/300, active 5/103/103, 1 automatic, 2 manual, 1 timed out."""
    _estate()
    report = report_build(start=at(0), end=at(10), policy="servers")
    keys = ("decision_p50_s", "decision_p95_s", "decision_max_s", "active_p50_s", "active_p95_s", "active_max_s",
            "auto_count", "manual_count", "timed_out")
    assert tuple(report.figure("approval", k).value for k in keys) == (100.0, 300.0, 300.0, 5.0, 103.0, 103.0, 1, 2, 1)
    dist, modes, groups = report.section("approval").tables
    assert [(r["mode"], r["requests"], r["decision_p50_s"], r["active_max_s"]) for r in modes.rows] == [
        ("automatic", 1, 2.0, 5.0), ("manual", 2, 100.0, 103.0)]
    assert {r["bucket"]: (r["auto"], r["manual"]) for r in dist.rows}["1–5 min"] == (0, 1)
    assert [(r["group"], r["decisions"], r["p50_s"]) for r in groups.rows] == [("G1", 1, 100.0), ("G2", 1, 300.0)]
    assert report.figure("approval", "timed_out").records.query["queue"] == "all"


def test_target_filter_and_empty_period():
    _estate()
    assert report_build(start=at(0), end=at(10), target="SRV-B").figure("approval", "decision_max_s").value == 50000.0
    empty = report_build(start=at(20), end=at(21))
    assert [f.value for f in empty.section("approval").figures] == [None] * 9
