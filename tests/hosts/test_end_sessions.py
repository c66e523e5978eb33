"""Post-session hygiene: end_sessions through the real WinRM test host (HTTP, NTLM, WS-Man).

The host's processes and logon sessions (with their Kerberos tickets, and stale entries that
Win32_LoggedOnUser keeps listing after a logon ended) are state the test controls; the test
host carries out end_sessions.ps1's CONTRACT on it.
"""
import pytest

from jitad import hosts
from jitad.hosts.sessions import sessions_result
from tests.support.winrm_host import WinRMTestHost

USER, PASSWORD = "JITAD\\svc-hygiene", "Hygiene-Pw-1"
ALICE, BOB = "S-1-5-21-7-8-9-2001", "S-1-5-21-7-8-9-2002"


def _logons() -> dict:
    return {
        ALICE: [{"id": 0x5A001, "tickets": 6, "session": 3},  # her RDP logon
                {"id": 0x5A002, "tickets": 2},  # a network logon holding no process
                {"id": 0x59FFF, "tickets": 0, "stale": True}],  # ended yesterday, still listed
        BOB: [{"id": 0x5B001, "tickets": 4, "session": 4}],
    }


@pytest.fixture
def host():
    with WinRMTestHost(users={USER: PASSWORD}, sessions={ALICE: [3, 3, 0], BOB: [4]}, logons=_logons()) as h:
        yield h
    assert h.errors == []


def _host(url) -> hosts.Host:
    return hosts.Host(hosts.HostConfig(url=url, username=USER, password=PASSWORD, allow_ntlm=True, connect_timeout=1,
                                       read_timeout=3, operation_timeout=2, deadline=5))


def test_sessions_are_logged_off_and_the_live_logons_purged(host):
    """GIVEN alice has an RDP logon and a network logon with Kerberos tickets, and a stale entry
    WHEN her sessions are ended THEN session 3 is logged off, her session-0 process stopped, the two
    live logon sessions purged (the stale one is not counted), nothing remains, and bob is untouched."""
    with _host(host.url) as h:
        ended = h.end_sessions(ALICE)
    assert ended == hosts.SessionsEnded(sid=ALICE, sessions=(3,), processes=1, tickets_purged=2, remaining=())
    assert [e["tickets"] for e in host.logons[ALICE]] == [0, 0, 0]
    assert host.logons[BOB][0]["tickets"] == 4 and host.sessions[BOB] == [4]


def test_only_stale_entries_left_is_a_success(host):
    """GIVEN only a stale logon entry is listed for a user (the logon ended, Win32_LoggedOnUser lingers)
    WHEN their sessions are ended THEN nothing is purged and nothing is reported as remaining: no false alarm."""
    with host.lock:
        host.logons[ALICE] = [{"id": 0x59FFF, "tickets": 0, "stale": True}]
        host.sessions.pop(ALICE)
    with _host(host.url) as h:
        ended = h.end_sessions(ALICE)
    assert (ended.sessions, ended.processes, ended.tickets_purged, ended.remaining) == ((), 0, 0, ())


def test_a_session_surviving_logoff_is_a_transient_failure_carrying_what_was_done(host):
    """GIVEN logoff.exe answers success but alice's processes keep running WHEN her sessions are ended
    THEN HostSessionsRemain (transient) names the live logon session still running processes, not the
    stale one, and carries the purge count; once the session is gone the same call succeeds."""
    host.fail = "session_survives"
    with _host(host.url) as h, pytest.raises(hosts.HostSessionsRemain) as e:
        h.end_sessions(ALICE)
    assert e.value.transient
    assert e.value.ended.remaining == (hosts.RemainingLogon("0x5a001", 2), hosts.RemainingLogon("", 1))
    assert e.value.ended.tickets_purged == 2
    assert "logon 0x5a001 (2 process(es))" in str(e.value) and "0x59fff" not in str(e.value)

    host.fail = None
    with _host(host.url) as h:
        assert h.end_sessions(ALICE).remaining == ()


def _answer(**changes) -> dict:
    base = {"sid": ALICE, "sessions": [3], "processes": 1, "failed": [], "tickets_purged": 2, "remaining": []}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


@pytest.mark.parametrize("answer", [
    _answer(tickets_purged=_DROP),  # the older contract, without the hygiene fields
    _answer(remaining=_DROP),
    _answer(extra="field"),
    _answer(sid=BOB),
    _answer(tickets_purged="2"),
    _answer(tickets_purged=True),
    _answer(tickets_purged=-1),
    _answer(tickets_purged=None),
    _answer(processes=1.5),
    _answer(sessions=["3"]),
    _answer(remaining=None),
    _answer(remaining=["0x5a001"]),
    _answer(remaining=[{"logon_id": "0x5a001"}]),
    _answer(remaining=[{"logon_id": "0x5a001", "processes": 0}]),
    _answer(remaining=[{"logon_id": "5a001", "processes": 1}]),
    _answer(remaining=[{"logon_id": "0x5A001; logoff", "processes": 1}]),
    _answer(remaining=[{"logon_id": "0x5a001", "processes": 1, "user": "alice"}]),
])
def test_answers_outside_the_contract_are_refused_over_the_wire(host, answer):
    """GIVEN the server answers end_sessions with exit 0 but outside its contract THEN HostScriptFailed,
    never a success nor a transient failure."""
    host.fail, host.bad_result = "bad_output", answer
    with _host(host.url) as h, pytest.raises(hosts.HostScriptFailed) as e:
        h.end_sessions(ALICE)
    assert not e.value.transient


def test_the_parser_takes_powershells_one_element_arrays_and_refuses_failed_logoffs():
    ended = sessions_result(_answer(sessions=3, remaining={"logon_id": "0x5a001", "processes": 1}), ALICE)
    assert ended.sessions == (3,) and ended.remaining == (hosts.RemainingLogon("0x5a001", 1),)
    with pytest.raises(hosts.HostScriptFailed, match=r"could not log off session\(s\) \[3\]"):
        sessions_result(_answer(failed=[3]), ALICE)
