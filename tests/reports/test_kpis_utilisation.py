"""JIT utilisation: rights held through JIT against standing rights, in people and principal-hours."""
import pytest

from jitad.reports.selectors.kpis import report_build

from .rows import at, grant, person, scan, standing_admin, target

pytestmark = pytest.mark.django_db
KEYS = ("jit_principals", "standing_principals", "jit_share_pct", "jit_principal_hours", "standing_principal_hours",
        "jit_hours_share_pct")


def _values(report):
    return tuple(report.figure("utilisation", k).value for k in KEYS)


def _estate():
    a = target("SRV-A", policy="servers")
    b = target("SRV-B", policy="other")
    scan(a, when=at(0))
    u1, u2 = person("u1"), person("u2")
    # Two overlapping grants of u1 on A (9-11 and 10-12): one right, three hours, not four.
    grant(u1, a, activated=at(1, 9), expires=at(1, 11), revoked=at(1, 11))
    grant(u1, a, activated=at(1, 10), expires=at(1, 12), revoked=at(1, 12))
    grant(u2, a, activated=at(2, 9), expires=at(2, 10), revoked=at(2, 10))
    grant(u1, b, activated=at(3, 9), expires=at(3, 10), revoked=at(3, 10))  # B has no scan
    standing_admin(a, "S-1-5-21-9-1", first_seen=at(-5))  # open all period: 240 h
    standing_admin(a, "S-1-5-21-9-2", first_seen=at(-5), resolved=at(-1))  # gone before the period
    return a, b, u1


def test_overlapping_grants_count_once_and_standing_only_where_scanned():
    """GIVEN u1 on A (two overlapping grants, 3 h), u2 on A (1 h), u1 on unscanned B (1 h), one standing admin on A
    WHEN the report covers ten days
    THEN 3 JIT rights against 1 standing (75 %), 5 h against 240 h (2 %); the server table lists A only."""
    _estate()
    report = report_build(start=at(0), end=at(10))
    assert _values(report) == (3, 1, 75.0, 5.0, 240.0, 2.0)
    table = report.section("utilisation").tables[0]
    assert [r["target"] for r in table.rows] == ["SRV-A"]
    assert table.rows[0] == {"target": "SRV-A", "jit_principals": 2, "standing_principals": 1,
                                  "jit_share_pct": 66.7, "jit_hours": 4.0, "standing_hours": 240.0}
    assert table.records[0].model == "elevation.grant" and table.records[0].count == 3


def test_a_grant_still_active_counts_until_the_period_ends():
    a, _b, u1 = _estate()
    grant(u1, a, activated=at(9, 23), expires=at(30))  # still active, no revoked_at
    assert report_build(start=at(0), end=at(10)).figure("utilisation", "jit_principal_hours").value == 6.0


def test_filters_by_policy_and_tier():
    _estate()
    assert _values(report_build(start=at(0), end=at(10), policy="other")) == (1, None, None, 1.0, None, None)
    assert _values(report_build(start=at(0), end=at(10), tier=0)) == (None,) * 6


def test_period_without_rows_is_none():
    target("SRV-C")
    assert _values(report_build(start=at(0), end=at(1))) == (None,) * 6
