"""Session evidence: security_events through the real WinRM test host (HTTP, NTLM, WS-Man).

The host's Security log is a list the test controls; the test host carries out
security_events.ps1's CONTRACT on it, so what comes back is what a server would answer.
"""
from datetime import datetime, timedelta, timezone

import pytest

from jitad import hosts
from tests.support.winrm_host import WinRMTestHost

USER, PASSWORD = "JITAD\\svc-evidence", "Evidence-Pw-1"
ALICE, BOB, CAROL = "S-1-5-21-7-8-9-2001", "S-1-5-21-7-8-9-2002", "S-1-5-21-7-8-9-2003"
ADMINS_GROUP = "S-1-5-32-544"
SYSTEM = "S-1-5-18"
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _log() -> list[dict]:
    """A realistic morning on SRV01: Alice's admin session, Bob's logon, SYSTEM noise, a log clearing."""
    return [
        # before the window
        {"id": 4624, "at": at(-30), "record": 100, "SubjectUserSid": SYSTEM, "TargetUserSid": ALICE,
         "LogonType": "3", "IpAddress": "10.0.0.5", "TargetLogonId": "0x1a0", "SubjectLogonId": "0x3e7"},
        # in the window
        {"id": 4732, "at": at(1), "record": 101, "SubjectUserSid": SYSTEM, "MemberSid": ALICE,
         "TargetSid": ADMINS_GROUP, "SubjectLogonId": "0x3e7"},
        {"id": 4624, "at": at(2), "record": 102, "SubjectUserSid": SYSTEM, "TargetUserSid": ALICE,
         "LogonType": "10", "IpAddress": "10.0.0.7", "TargetLogonId": "0x2b1", "SubjectLogonId": "0x3e7"},
        {"id": 4672, "at": at(2), "record": 103, "SubjectUserSid": ALICE, "SubjectLogonId": "0x2b1"},
        {"id": 4624, "at": at(3), "record": 104, "SubjectUserSid": SYSTEM, "TargetUserSid": BOB,
         "LogonType": "2", "IpAddress": "-", "TargetLogonId": "0x2c0", "SubjectLogonId": "0x3e7"},
        {"id": 4688, "at": at(4), "record": 105, "SubjectUserSid": ALICE, "SubjectLogonId": "0x2b1",
         "NewProcessName": "C:\\Windows\\System32\\cmd.exe", "TargetUserSid": "S-1-0-0"},
        {"id": 4688, "at": at(4), "record": 106, "SubjectUserSid": SYSTEM, "SubjectLogonId": "0x3e7",
         "NewProcessName": "C:\\Windows\\System32\\svchost.exe", "TargetUserSid": "S-1-0-0"},
        {"id": 4625, "at": at(5), "record": 107, "SubjectUserSid": SYSTEM, "TargetUserSid": ALICE,
         "LogonType": "3"},  # a failed logon: not an Id the script reads
        {"id": 1102, "at": at(6), "record": 108, "SubjectUserSid": CAROL, "SubjectLogonId": "0x2d0"},
        {"id": 4634, "at": at(7), "record": 109, "TargetUserSid": ALICE, "TargetLogonId": "0x2b1",
         "LogonType": "10"},
        {"id": 4733, "at": at(8), "record": 110, "SubjectUserSid": SYSTEM, "MemberSid": ALICE,
         "TargetSid": ADMINS_GROUP, "SubjectLogonId": "0x3e7"},
        # after the window
        {"id": 4624, "at": at(90), "record": 111, "SubjectUserSid": SYSTEM, "TargetUserSid": ALICE,
         "LogonType": "10", "IpAddress": "10.0.0.7", "TargetLogonId": "0x3a0"},
    ]


@pytest.fixture
def host():
    with WinRMTestHost(users={USER: PASSWORD}, security_log=_log()) as h:
        yield h


def _host(url) -> hosts.Host:
    return hosts.Host(hosts.HostConfig(url=url, username=USER, password=PASSWORD, allow_ntlm=True, connect_timeout=1,
                                       read_timeout=3, operation_timeout=2, deadline=5))


def test_the_users_events_in_the_window_and_the_log_clearing(host):
    with _host(host.url) as h:
        result = h.security_events(sids=[ALICE], start=at(0), end=at(60))
    assert isinstance(result, hosts.SecurityEvents) and result.truncated is False
    assert [(e.id, e.record) for e in result.events] == [
        (4732, 101), (4624, 102), (4672, 103), (4688, 105), (1102, 108), (4634, 109), (4733, 110)]
    logon = result.events[1]
    assert logon == hosts.SecurityEvent(id=4624, at=at(2), record=102, sid=ALICE, logon_type=10,
                                        source="10.0.0.7", logon_id="0x2b1", process="", member="", target="")
    assert result.events[0].member == ALICE and result.events[0].target == ADMINS_GROUP
    assert result.events[3].process == "C:\\Windows\\System32\\cmd.exe" and result.events[3].logon_id == "0x2b1"
    assert result.events[4].sid == CAROL  # 1102 is kept whoever cleared the log
    assert all(e.at.tzinfo is not None and at(0) <= e.at <= at(60) for e in result.events)
    assert host.calls[-1].script == "security_events"
    assert host.calls[-1].input["sids"] == [ALICE] and host.calls[-1].input["max"] == 1000
    assert host.errors == []


def test_several_sids_and_windows_empty_value(host):
    with _host(host.url) as h:
        result = h.security_events(sids=[BOB, CAROL], start=at(0), end=at(60), max_events=50)
    assert [(e.id, e.sid) for e in result.events] == [(4624, BOB), (1102, CAROL)]
    assert result.events[0].source == "" and result.events[0].logon_type == 2  # IpAddress "-" is empty


def test_nobodys_events_and_an_empty_window(host):
    with _host(host.url) as h:
        assert h.security_events(sids=["S-1-5-21-7-8-9-9999"], start=at(10), end=at(60)).events == ()
        quiet = h.security_events(sids=[ALICE], start=at(200), end=at(300))
    assert quiet == hosts.SecurityEvents(events=(), truncated=False)


def test_the_bound_cuts_the_read_and_says_so(host):
    with _host(host.url) as h:
        cut = h.security_events(sids=[ALICE], start=at(0), end=at(60), max_events=3)
        exact = h.security_events(sids=[ALICE], start=at(0), end=at(60), max_events=10)
    # the first 3 events of the window are read (101, 102, 103), all Alice's
    assert cut.truncated is True and [e.record for e in cut.events] == [101, 102, 103]
    assert exact.truncated is False and len(exact.events) == 7  # 9 events of the read Ids in the window


def test_state_is_read_at_each_call(host):
    with _host(host.url) as h:
        before = h.security_events(sids=[BOB], start=at(0), end=at(60))
        with host.lock:
            host.security_log.append({"id": 4647, "at": at(30), "record": 120, "TargetUserSid": BOB,
                                      "TargetLogonId": "0x2c0"})
        after = h.security_events(sids=[BOB], start=at(0), end=at(60))
    assert [e.record for e in after.events] == [e.record for e in before.events] + [120]
    assert after.events[-1].logon_id == "0x2c0" and after.events[-1].logon_type is None


@pytest.mark.parametrize("kwargs", [
    dict(sids=[]),
    dict(sids=[f"S-1-5-21-7-8-9-{3000 + i}" for i in range(11)]),
    dict(sids="S-1-5-21-7-8-9-2001"),
    dict(sids=["S-1-5-21-7-8-9-500"]),  # the built-in Administrator: not a person's account
    dict(sids=[SYSTEM]),
    dict(sids=["S-1-5-21-7-8-9-2001; Remove-Item C:\\"]),
    dict(start=datetime(2026, 12, 6, 9, 0)),  # naive
    dict(end=datetime(2026, 12, 6, 10, 0)),
    dict(start=at(60), end=at(0)),
    dict(start=at(5), end=at(5)),
    dict(start="2026-12-06T09:00:00Z"),
    dict(max_events=0),
    dict(max_events=5001),
    dict(max_events=True),
    dict(max_events="10"),
])
def test_bad_input_is_refused_before_any_call(host, kwargs):
    args = dict(sids=[ALICE], start=at(0), end=at(60))
    args.update(kwargs)
    with pytest.raises(hosts.HostError, match="refusing|max_events"):
        _host(host.url).security_events(**args)
    assert host.calls == [] and host.requests == []


@pytest.mark.parametrize("payload", [
    {"sids": ["not-a-sid"], "start": "2026-12-06T09:00:00Z", "end": "2026-12-06T10:00:00Z", "max": 5},
    {"sids": [], "start": "2026-12-06T09:00:00Z", "end": "2026-12-06T10:00:00Z", "max": 5},
    {"sids": [ALICE], "start": "2026-12-06 09:00", "end": "2026-12-06T10:00:00Z", "max": 5},
    {"sids": [ALICE], "start": "2026-12-06T10:00:00Z", "end": "2026-12-06T09:00:00Z", "max": 5},
    {"sids": [ALICE], "start": "2026-12-06T09:00:00Z", "end": "2026-12-06T10:00:00Z", "max": 5001},
    {"sids": ALICE, "start": "2026-12-06T09:00:00Z", "end": "2026-12-06T10:00:00Z", "max": 5},
])
def test_the_script_refuses_bad_input_itself_with_exit_3(host, payload):
    with _host(host.url) as h, pytest.raises(hosts.HostScriptFailed, match="exited with 3") as e:
        h.run_script("security_events", payload)
    assert e.value.exit_code == 3


def test_a_failing_script_is_a_script_failure(host):
    host.fail = "script_error"
    with pytest.raises(hosts.HostScriptFailed, match="exited with 2: Access is denied") as e:
        _host(host.url).security_events(sids=[ALICE], start=at(0), end=at(60))
    assert e.value.exit_code == 2


def test_malformed_output_is_a_script_failure(host):
    host.fail = "bad_output"
    with pytest.raises(hosts.HostScriptFailed, match="unexpected result"):
        _host(host.url).security_events(sids=[ALICE], start=at(0), end=at(60))


@pytest.mark.parametrize("event", [
    {"id": 4624, "at": "2026-12-06T09:02:00Z", "record": 1, "sid": BOB},  # a SID not asked for
    {"id": 4625, "at": "2026-12-06T09:02:00Z", "record": 1, "sid": ALICE},  # an Id not read
    {"id": 4624, "at": "yesterday", "record": 1, "sid": ALICE},
    {"id": 4624, "at": "2026-12-06T09:02:00", "record": 1, "sid": ALICE},  # no zone
    {"id": 4624, "at": "2026-12-06T09:02:00Z", "record": "1", "sid": ALICE},
    {"id": 4624, "at": "2026-12-06T09:02:00Z", "record": 1, "sid": ALICE, "logon_type": "10"},
    {"id": 4624, "at": "2026-12-06T09:02:00Z", "record": 1, "sid": ALICE, "source": None},
    "an event",
])
def test_results_outside_the_contract_are_refused(event):
    from jitad.hosts.events import events_result

    full = {"logon_type": None, "source": "", "logon_id": "", "process": "", "member": "", "target": ""}
    if isinstance(event, dict):
        event = {**full, **event}
    with pytest.raises(hosts.HostScriptFailed, match="unexpected result"):
        events_result({"events": [event], "truncated": False}, [ALICE], 10)
    ok = {**full, "id": 4624, "at": "2026-12-06T09:02:00Z", "record": 1, "sid": ALICE}
    assert events_result({"events": ok, "truncated": False}, [ALICE], 10).events[0].record == 1  # one as its element
    with pytest.raises(hosts.HostScriptFailed):
        events_result({"events": [ok, ok], "truncated": False}, [ALICE], 1)  # more than asked for
    with pytest.raises(hosts.HostScriptFailed):
        events_result({"events": [], "truncated": "no"}, [ALICE], 1)
