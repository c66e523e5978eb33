"""Reading a window of a server's Security log past the server's bound, through the real WinRM test host.

``read_window`` is the part of session evidence that talks to the server: the test host carries out
security_events.ps1's contract (at most ``max`` events read, oldest first, then filtered by SID), with
JITAD_EVIDENCE_MAX_EVENTS_PER_CALL at 5 in tests.
"""
from datetime import datetime, timedelta, timezone

import pytest
from django.test import override_settings

from jitad import hosts
from jitad.elevation.services.evidence import read_window
from tests.support.winrm_host import WinRMTestHost

USER, PASSWORD = "JITAD\\svc-evidence", "Evidence-Pw-1"
ALICE, BOB = "S-1-5-21-7-8-9-2001", "S-1-5-21-7-8-9-2002"
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def logon(record: int, when: datetime, sid: str = ALICE) -> dict:
    return {"id": 4624, "at": when, "record": record, "TargetUserSid": sid, "LogonType": "3", "IpAddress": "10.0.0.5"}


def _read(log: list[dict], start: datetime, end: datetime, sids=(ALICE,)):
    with WinRMTestHost(users={USER: PASSWORD}, security_log=log) as server:
        config = hosts.HostConfig(url=server.url, username=USER, password=PASSWORD, allow_ntlm=True, connect_timeout=1,
                                  read_timeout=3, operation_timeout=2, deadline=5)
        with hosts.Host(config) as h:
            return read_window(h, sids=list(sids), start=start, end=end), server


@override_settings(JITAD_EVIDENCE_MAX_EVENTS_PER_CALL=5)
def test_a_cut_answer_is_read_on_from_its_last_event_until_the_window_is_read():
    """GIVEN 12 events of Alice in the window, 5 per call WHEN the window is read THEN every one comes back
    (an event read twice at a cut is the same record), in several calls, and the whole window is read."""
    log = [logon(100 + i, at(i)) for i in range(12)]
    read, server = _read(log, at(-1), at(60))
    assert sorted({e.record for e in read.events}) == list(range(100, 112))
    assert read.calls == len([c for c in server.calls if c.script == "security_events"]) >= 3
    assert read.reached == at(60) and read.skipped == []


@override_settings(JITAD_EVIDENCE_MAX_EVENTS_PER_CALL=5)
def test_a_window_filled_by_other_accounts_is_halved_and_what_cannot_be_read_is_reported():
    """GIVEN 7 of Bob's events in one second (more than a call reads), then Alice's logons later
    WHEN Alice's window is read THEN the crowded second is halved down to under a second and skipped
    (reported, not silently lost), and Alice's later events are all read."""
    crowded = [logon(200 + i, at(10) + timedelta(milliseconds=i), sid=BOB) for i in range(7)]
    later = [logon(300 + i, at(20 + i)) for i in range(3)]
    read, _server = _read(crowded + later, at(9.8), at(40))
    assert sorted({e.record for e in read.events}) == [300, 301, 302]
    assert len(read.skipped) == 1
    a, b = read.skipped[0]
    assert a <= at(10) and b - a <= timedelta(seconds=1)
    assert read.reached == at(40)


@override_settings(JITAD_EVIDENCE_MAX_EVENTS_PER_CALL=5)
def test_a_quiet_window_is_one_call():
    read, server = _read([logon(1, at(100))], at(0), at(60))
    assert read.events == [] and read.calls == 1 and read.reached == at(60)


def test_a_server_that_does_not_answer_raises_the_seams_error():
    with WinRMTestHost(users={USER: PASSWORD}) as server:
        server.stop()
        config = hosts.HostConfig(url=server.url, username=USER, password=PASSWORD, allow_ntlm=True, connect_timeout=1,
                                  read_timeout=3, operation_timeout=2, deadline=5)
        with pytest.raises(hosts.HostError) as e, hosts.Host(config) as h:
            read_window(h, sids=[ALICE], start=at(0), end=at(60))
    assert e.value.transient
