"""report_build on an empty database and on a few rows: every section and key is there, nothing made up."""
import pytest

from jitad.reports.selectors.kpis import report_build

from .rows import at, grant, person, target

pytestmark = pytest.mark.django_db

KEYS = {
    "standing": {"baseline", "now", "reduction_pct"},
    "utilisation": {"jit_principals", "standing_principals", "jit_share_pct", "jit_principal_hours",
                    "standing_principal_hours", "jit_hours_share_pct"},
    "approval": {"decision_p50_s", "decision_p95_s", "decision_max_s", "active_p50_s", "active_p95_s", "active_max_s",
                 "auto_count", "manual_count", "timed_out"},
    "revocation": {"ended", "automatic_pct", "on_time_pct", "ever_pct", "late", "revoke_failed_episodes",
                   "host_confirmed_pct"},
    "risk": {"always_on", "unused_eligible", "off_hours_activations", "request_bursts", "out_of_band",
             "breakglass_checkouts", "logon_after_end", "log_cleared", "unexpected_source", "unused_elevation"},
}


def test_empty_period_has_every_key_and_no_made_up_zero():
    report = report_build(start=at(0), end=at(30))
    assert [s.key for s in report.sections] == list(KEYS)
    for s in report.sections:
        assert KEYS[s.key] <= {f.key for f in s.figures}
    nones = {(s.key, f.key) for s in report.sections for f in s.figures if f.value is None}
    assert ("standing", "baseline") in nones and ("approval", "decision_p50_s") in nones
    assert ("revocation", "ended") in nones and ("utilisation", "jit_principals") in nones


def test_a_few_rows():
    t = target()
    u = person()
    grant(u, t, activated=at(1, 9), expires=at(1, 10), revoked=at(1, 10, seconds=3))
    report = report_build(start=at(0), end=at(30))
    assert report.figure("revocation", "ended").value == 1
    assert report.figure("utilisation", "jit_principal_hours").value == 1.0


def test_default_period_and_bad_period(settings):
    from datetime import timedelta

    from jitad.reports.selectors.kpis import period_default

    settings.JITAD_REPORT_PERIOD_DAYS = 7
    start, end = period_default(now=at(10))
    assert (start, end) == (at(3), at(10))
    with pytest.raises(ValueError):
        report_build(start=at(1), end=at(1) - timedelta(seconds=1))


def test_one_section_only():
    report = report_build(start=at(0), end=at(1), sections=["revocation"])
    assert [s.key for s in report.sections] == ["revocation"]
    with pytest.raises(ValueError):
        report_build(start=at(0), end=at(1), sections=["nope"])


def test_naive_times_are_utc():
    report = report_build(start=at(0).replace(tzinfo=None), end=at(1).replace(tzinfo=None))
    assert (report.start, report.end) == (at(0), at(1))
