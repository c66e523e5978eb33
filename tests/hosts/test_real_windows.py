"""jitad's scripts against a real Windows server, when one is configured.

Set JITAD_TEST_WINRM_URL, JITAD_TEST_WINRM_USERNAME, JITAD_TEST_WINRM_PASSWORD (and
JITAD_TEST_WINRM_TRANSPORT, JITAD_TEST_WINRM_CA_BUNDLE for HTTPS). Read-only: it lists
local Administrators, ends the sessions of a SID that no account has and reads its Security log events.

With JITAD_TEST_WINRM_LOGGED_ON_SID (a throwaway test account's SID, logged on to that server
beforehand, e.g. by an RDP or PowerShell remoting session), it also ends that account's sessions
for real: logoff, tickets purged, and no logon session left.
"""
import os

import pytest

from jitad import hosts

URL = os.environ.get("JITAD_TEST_WINRM_URL", "")
pytestmark = pytest.mark.skipif(
    not URL, reason="no Windows server configured (set JITAD_TEST_WINRM_URL, _USERNAME, _PASSWORD to run these)"
)


def _host() -> hosts.Host:
    return hosts.Host(hosts.HostConfig(
        url=URL,
        transport=os.environ.get("JITAD_TEST_WINRM_TRANSPORT", "ntlm"),
        username=os.environ.get("JITAD_TEST_WINRM_USERNAME", ""),
        password=os.environ.get("JITAD_TEST_WINRM_PASSWORD", ""),
        ca_bundle=os.environ.get("JITAD_TEST_WINRM_CA_BUNDLE", ""),
        allow_ntlm=True,
    ))


def test_local_administrators_on_a_real_server():
    with _host() as h:
        members = h.local_admins()
    assert members, "local Administrators is never empty on Windows"
    assert all(hosts.is_sid(m.sid) for m in members)
    assert any(m.sid.endswith("-500") or m.sid.endswith("-512") for m in members)


def test_ending_sessions_of_nobody_is_a_no_op():
    with _host() as h:
        result = h.end_sessions("S-1-5-21-1-2-3-999999")
    assert result.sessions == () and result.processes == 0
    assert result.tickets_purged == 0 and result.remaining == ()


@pytest.mark.skipif(not os.environ.get("JITAD_TEST_WINRM_LOGGED_ON_SID"),
                    reason="no logged-on test account (set JITAD_TEST_WINRM_LOGGED_ON_SID to run it)")
def test_ending_a_logged_on_test_accounts_sessions_leaves_none():
    """GIVEN a throwaway account logged on to the server WHEN its sessions are ended THEN something was
    ended (a session logged off, a process stopped or a logon session purged) and the server confirms no
    logon session of it remains (else HostSessionsRemain); a second call finds no session to log off."""
    sid = os.environ["JITAD_TEST_WINRM_LOGGED_ON_SID"]
    with _host() as h:
        first = h.end_sessions(sid)
        second = h.end_sessions(sid)
    assert (first.sessions or first.processes or first.tickets_purged) and first.remaining == ()
    assert second.sessions == () and second.remaining == ()


def test_security_events_of_nobody_in_the_last_hour():
    from datetime import datetime, timedelta, timezone

    end = datetime.now(timezone.utc)
    with _host() as h:
        result = h.security_events(sids=["S-1-5-21-1-2-3-999999"], start=end - timedelta(hours=1), end=end,
                                   max_events=50)
    assert all(e.id == 1102 for e in result.events), "nobody has that SID: only log clearings can match"
