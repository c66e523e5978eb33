"""jitad's scripts against a real Windows server, when one is configured.

Set JITAD_TEST_WINRM_URL, JITAD_TEST_WINRM_USERNAME, JITAD_TEST_WINRM_PASSWORD (and
JITAD_TEST_WINRM_TRANSPORT, JITAD_TEST_WINRM_CA_BUNDLE for HTTPS). Read-only: it lists
local Administrators, ends the sessions of a SID that no account has and reads its Security log events.
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


def test_security_events_of_nobody_in_the_last_hour():
    from datetime import datetime, timedelta, timezone

    end = datetime.now(timezone.utc)
    with _host() as h:
        result = h.security_events(sids=["S-1-5-21-1-2-3-999999"], start=end - timedelta(hours=1), end=end,
                                   max_events=50)
    assert all(e.id == 1102 for e in result.events), "nobody has that SID: only log clearings can match"
