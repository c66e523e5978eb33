"""A hand-made Report (the shape of jitad/reports/figures.py) for the pages, exports and command tests.

The pages and the command call ``report_build`` through a small wrapper; ``fake_report``
replaces that wrapper so these tests check rendering and exports on known figures, apart
from how the figures are computed.
"""
from datetime import date, datetime, timezone

import pytest

from jitad.reports.figures import Chart, Column, Figure, Records, Report, Section, Table

START = datetime(2026, 11, 5, tzinfo=timezone.utc)
END = datetime(2026, 12, 5, tzinfo=timezone.utc)
HOSTILE = '<script>alert("x")</script>&"\''


def sample_report(start=START, end=END, filters=None) -> Report:
    """Five sections; standing has a trend (line), approval a histogram, revocation a bar chart; one label is hostile."""
    trend = Table(
        key="trend", title="Standing admins per day",
        columns=[Column("day", "Day"), Column("standing", "Standing members"), Column("jit", "JIT grants")],
        rows=[{"day": date(2026, 12, 1), "standing": 40, "jit": 3}, {"day": date(2026, 12, 2), "standing": 30, "jit": 7},
              {"day": date(2026, 12, 3), "standing": None, "jit": 9}, {"day": date(2026, 12, 4), "standing": 10, "jit": 12}],
        chart=Chart("line", "day", ("standing", "jit")),
        records={0: Records("elevation.grant", {"id__in": "1,2,3"}, 3)},
    )
    by_target = Table(
        key="by_target", title="By target",
        columns=[Column("target", "Target"), Column("reduction", "Reduction", "%")],
        rows=[{"target": "SRV01", "reduction": 75.0}, {"target": HOSTILE, "reduction": 12.5},
              {"target": "=cmd|' /C calc'!A0", "reduction": 0}],
        chart=Chart("bar", "target", ("reduction",)),
        records={0: Records("elevation.grant", {"target__name": "SRV01"}, 2)},
    )
    hist = Table(
        key="approval_time", title="Time to approve",
        columns=[Column("bucket", "Waited"), Column("requests", "Requests")],
        rows=[{"bucket": "< 5 min", "requests": 12}, {"bucket": "5–30 min", "requests": 5}, {"bucket": "> 30 min", "requests": 1}],
        chart=Chart("histogram", "bucket", ("requests",)),
    )
    failed = Table(key="failures", title="Failed revocations", columns=[Column("target", "Target"), Column("count", "Failed")],
                   rows=[{"target": "SRV09", "count": 2}], chart=Chart("bar", "target", ("count",)),
                   records={0: Records("elevation.grant", {"state": "revoke_failed"}, 2)})
    return Report(
        start=start, end=end, filters=filters or {}, generated_at=end,
        sections=[
            Section("standing", "Standing access reduction", "Standing admin memberships now, against the period's start.",
                    [Figure("reduction", "Reduction", 75.0, "%", Records("elevation.grant", {"state": "active"}, 4)),
                     Figure("standing_now", "Standing members now", 10)], [trend, by_target]),
            Section("utilisation", "JIT utilisation", "Share of granted time used.", [Figure("grants", "Grants", 31)]),
            Section("approval", "Approval time", "From request to decision.",
                    [Figure("median", "Median time to approve", 240, "s"), Figure("p95", "95th percentile", None, "s")],
                    [hist]),
            Section("revocation", "Revocation success", "Revoked on time and verified.",
                    [Figure("success", "Verified on time", 98.5, "%")], [failed]),
            Section("risk", "Risk signals", "Out-of-band members and exposed accounts.", [Figure("out_of_band", "Out of band", 0)]),
        ],
    )


@pytest.fixture
def fake_report(monkeypatch):
    """Replace report_build for the pages and the command; returns the list of calls (their keyword arguments)."""
    from jitad.reports.management.commands import jitad_report
    from jitad.reports.views import pages

    calls = []

    def build(**kwargs):
        calls.append(kwargs)
        filters = {k: kwargs[k] for k in ("tier", "target", "policy") if kwargs.get(k) is not None}
        report = sample_report(kwargs["start"], kwargs["end"], filters)
        if kwargs.get("sections") is not None:  # as report_build does: only those sections
            report.sections = [report.section(k) for k in kwargs["sections"]]
        return report

    monkeypatch.setattr(pages, "report_build", build)
    monkeypatch.setattr(jitad_report, "report_build", build)
    return calls


@pytest.fixture
def named(db):
    """Make a target and a policy with these names exist, so the filters naming them are valid."""
    from jitad.elevation.models import Policy, Target

    def make(target: str, policy: str):
        t = Target.objects.create(name=target, group_dn=f"CN=JIT-{len(target)},OU=JIT,DC=jitad,DC=test")
        Policy.objects.create(name=policy).targets.add(t)

    return make


@pytest.fixture
def demo_estate(samba_dc, ldap_admin):
    """The session's DC may take the demo's estate for one test; its OUs are deleted after (people, role groups,
    and the break-glass accounts the estate makes standing members of Domain Admins), so the tests that follow
    find Domain Admins as provisioned."""
    yield
    from ldap3 import SUBTREE

    conn = ldap_admin()
    try:
        for ou in (f"OU=BreakGlass,{samba_dc.base_dn}", f"OU=People,{samba_dc.base_dn}"):
            conn.search(ou, "(objectClass=*)", SUBTREE, attributes=[])
            # Deepest first: an OU goes only once it is empty.
            for dn in sorted((e.entry_dn for e in conn.entries), key=lambda d: d.count(","), reverse=True):
                conn.delete(dn)
    finally:
        conn.unbind()
