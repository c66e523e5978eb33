"""Access history's grant rows count what the grant's account did on the server (SessionEvent), in the same query."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jitad.elevation.models import SessionEvent
from jitad.reports.history.selectors import access_at

from .history_builders import at, grant, policy, target, user

pytestmark = pytest.mark.usefixtures("db")

Kind = SessionEvent.Kind


def _event(g, event_id, *, hours, record, **fields):
    return SessionEvent.objects.create(grant=g, host="SRV01", record=record, event_id=event_id, at=at(hours),
                                       collected_at=at(hours), **fields)


def _queries(srv) -> tuple[int, list]:
    with CaptureQueriesContext(connection) as q:
        rows = access_at(target=srv, start=at(-1), end=at(10))
    return len(q), rows


def test_grant_rows_carry_logons_processes_and_events_after_the_end_without_more_queries():
    """GIVEN two grants on SRV01, one with no session events
    WHEN the history is read, then again after many events are stored for both
    THEN each row counts its own logons, processes and events after its end, and the query count is the same."""
    srv = target("SRV01")
    policy(srv)
    quiet = grant(srv, user("alice"), start=at(0), end=at(2))
    busy = grant(srv, user("bob"), start=at(1), end=at(3))
    before, rows = _queries(srv)
    assert [(r.evidence["session_logons"], r.evidence["session_processes"], r.evidence["session_after_end"])
            for r in rows] == [(0, 0, 0), (0, 0, 0)]
    _event(quiet, Kind.LOGON, hours=0.5, record=1, logon_type=10)
    for i in range(40):
        _event(busy, Kind.PROCESS, hours=1.5, record=100 + i, process="cmd.exe")
    _event(busy, Kind.LOGON, hours=1.1, record=200, logon_type=10)
    _event(busy, Kind.LOGON, hours=1.2, record=201, logon_type=3)
    _event(busy, Kind.LOGON, hours=4, record=202, logon_type=10, after_end=True)
    after, rows = _queries(srv)
    assert after == before
    counts = {r.principal: (r.evidence["session_logons"], r.evidence["session_processes"],
                            r.evidence["session_after_end"]) for r in rows}
    assert counts == {"alice": (1, 0, 0), "bob": (3, 40, 1)}
