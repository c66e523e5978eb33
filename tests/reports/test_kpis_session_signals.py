"""The risk section's session-signal figures: counted from SessionSignal rows in the period and scope, each
linked to the admin changelist of the signals behind it; unknown (None) when no server was read."""
import pytest

from jitad.elevation.models import EvidencePull, SessionSignal
from jitad.reports.selectors.kpis import report_build

from .rows import at, grant, person, target

pytestmark = pytest.mark.django_db
Kind = SessionSignal.Kind


def _signal(g, kind, when, record=0):
    return SessionSignal.objects.create(grant=g, kind=kind, record=record, severity="critical", at=when, raised_at=when,
                                        detail=f"{kind} on grant {g.pk}")


def _pull(g, when):
    return EvidencePull.objects.create(grant=g, created_at=when, read_through=when, reads=3, finished_at=None)


def test_no_server_read_is_unknown_not_zero():
    t = target(winrm=False)
    grant(person(), t, activated=at(1, 9), expires=at(1, 10), revoked=at(1, 10))
    report = report_build(start=at(0), end=at(30))
    for key in ("logon_after_end", "log_cleared", "unexpected_source", "unused_elevation"):
        assert report.figure("risk", key).value is None


def test_signals_are_counted_by_kind_in_the_period_and_scope_and_link_to_their_rows():
    """GIVEN signals on two servers, one outside the period WHEN the report is built THEN each kind counts
    the period's signals, the records link names them, and a target filter narrows the counts."""
    a, b = target("SRVA", winrm=True), target("SRVB", winrm=True)
    alice = person("alice")
    ga = grant(alice, a, activated=at(1, 9), expires=at(1, 10), revoked=at(1, 10))
    gb = grant(alice, b, activated=at(2, 9), expires=at(2, 10), revoked=at(2, 10))
    _pull(ga, at(1, 9)), _pull(gb, at(2, 9))
    s1 = _signal(ga, Kind.LOGON_AFTER_END, at(1, 11), record=10)
    s2 = _signal(ga, Kind.LOGON_AFTER_END, at(1, 12), record=11)
    s3 = _signal(gb, Kind.LOG_CLEARED, at(2, 9, 30), record=12)
    _signal(gb, Kind.UNUSED, at(40))  # outside the period
    report = report_build(start=at(0), end=at(30))
    after = report.figure("risk", "logon_after_end")
    assert after.value == 2
    assert after.records.model == "elevation.sessionsignal"
    assert after.records.query["id__in"] == ",".join(str(i) for i in sorted([s1.pk, s2.pk]))
    assert report.figure("risk", "log_cleared").value == 1
    assert report.figure("risk", "log_cleared").records.query["id__in"] == str(s3.pk)
    assert report.figure("risk", "unexpected_source").value == 0
    assert report.figure("risk", "unexpected_source").records is None
    assert report.figure("risk", "unused_elevation").value == 0
    table = next(t for s in report.sections if s.key == "risk" for t in s.tables if t.key == "session_signals")
    assert [r["grant"] for r in table.rows] == [gb.pk, ga.pk, ga.pk]

    narrowed = report_build(start=at(0), end=at(30), target="SRVB")
    assert narrowed.figure("risk", "logon_after_end").value == 0
    assert narrowed.figure("risk", "log_cleared").value == 1
