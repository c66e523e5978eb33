"""Revocation success: on time within the SLA, automatic, ever; lateness; revoke_failed episodes; host checks."""
import pytest

from jitad.elevation.models import Grant
from jitad.reports.selectors.kpis import report_build
from jitad.reports.services.demo_history import _audit_at

from .rows import at, grant, person, target

pytestmark = pytest.mark.django_db


def _failed(g, when):
    _audit_at(when, actor="system:engine", action="grant.revoke_failed", object_type="grant", object_id=g.pk,
              before="revoking", after="revoke_failed")


def _estate():
    t = target("SRV-A", winrm=True, policy="servers")
    target("SRV-B", policy="other")
    u = person("u")
    grant(u, t, activated=at(1, 9), expires=at(1, 10), revoked=at(1, 10, seconds=5), host_check="verified")
    grant(u, t, activated=at(1, 11), expires=at(1, 12), revoked=at(1, 12, seconds=600))
    g3 = grant(u, t, activated=at(2, 9), expires=at(2, 10), revoked=at(2, 14), host_check="failed")
    _failed(g3, at(2, 10, 1))
    grant(u, t, activated=at(3, 9), expires=at(3, 11), revoke_requested=at(3, 9, 30), revoked=at(3, 9, 30, 2))
    g5 = grant(u, t, activated=at(4, 9), expires=at(4, 10), state=Grant.State.REVOKE_FAILED)
    _failed(g5, at(4, 10, 1))
    grant(u, t, activated=at(9, 9), expires=at(40))  # still active: not ended
    grant(u, t, activated=None, created=at(4, 23), expires=at(5), state=Grant.State.GRANT_FAILED)  # never active
    return g3, g5


def test_shares_lateness_and_episodes(settings):
    """GIVEN five grants ending in the period: on time (5 s), late (600 s), late after a revoke_failed episode
    (4 h), released early and removed in 2 s, and one still revoke_failed; plus one active and one never active
    WHEN the SLA is 60 s
    THEN 5 ended, 60 % automatic, 40 % on time, 80 % ever, 3 late (the unremoved first), 2 episodes,
    host-confirmed 1 of 2."""
    settings.JITAD_REPORT_REVOKE_SLA_SECONDS = 60
    g3, g5 = _estate()
    report = report_build(start=at(0), end=at(10))
    keys = ("ended", "automatic_pct", "on_time_pct", "ever_pct", "late", "revoke_failed_episodes", "host_confirmed_pct")
    assert tuple(report.figure("revocation", k).value for k in keys) == (5, 60.0, 40.0, 80.0, 3, 2, 50.0)
    lateness, late, episodes = report.section("revocation").tables
    assert {r["bucket"]: r["grants"] for r in lateness.rows} == {"< 1 s": 0, "1–10 s": 2, "10–60 s": 0, "1–5 min": 0,
                                                                  "5–60 min": 1, "≥ 1 h": 1}
    assert late.rows[0]["grant"] == g5.pk and late.rows[0]["removed"] is False
    assert [r["late_s"] for r in late.rows[1:]] == [14400.0, 600.0]
    assert [(r["grant"], r["outcome"], r["recovered_after_s"]) for r in episodes.rows] == [
        (g3.pk, "removed", 14340.0), (g5.pk, "revoke_failed", None)]
    assert late.records[0].query == {"view": "all", "id__in": str(g5.pk)}


def test_sla_setting_changes_on_time(settings):
    settings.JITAD_REPORT_REVOKE_SLA_SECONDS = 3600
    _estate()
    report = report_build(start=at(0), end=at(10))
    assert (report.figure("revocation", "on_time_pct").value, report.figure("revocation", "late").value) == (60.0, 2)


def test_filter_without_grants_is_none():
    _estate()
    report = report_build(start=at(0), end=at(10), target="SRV-B")
    assert [f.value for f in report.section("revocation").figures] == [None] * 7
