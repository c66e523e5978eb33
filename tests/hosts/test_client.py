"""jitad's host seam against the WinRM test host: real HTTP(S), real NTLM or Basic, real WS-Man.

Each failure a server can produce becomes one of the seam's own errors, within the call's
deadline; nothing of pywinrm or requests leaks out.
"""
import pytest

from jitad import hosts
from tests.support.test_ca import make_test_ca
from tests.support.winrm_host import WinRMTestHost

USER, PASSWORD = "JITAD\\svc-seam", "Seam-Pw-1"
ADMINS = [
    {"sid": "S-1-5-21-1-2-3-500", "path": "WinNT://JITAD/SRV01/Administrator", "class": "User"},
    {"sid": "S-1-5-21-7-8-9-1105", "path": "WinNT://JITAD/JIT-SRV01-Admins", "class": "Group"},
    {"sid": "S-1-5-21-7-8-9-4711", "path": "WinNT://S-1-5-21-7-8-9-4711", "class": ""},
]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_test_ca(tmp_path_factory.mktemp("seam-ca"))


@pytest.fixture
def host():
    with WinRMTestHost(users={USER: PASSWORD}, admins=ADMINS, sessions={"S-1-5-21-7-8-9-2001": [3, 0]}) as h:
        yield h


def _config(url, **kw):
    base = dict(url=url, username=USER, password=PASSWORD, allow_ntlm=True, connect_timeout=1, read_timeout=3, operation_timeout=2,
                deadline=5)
    base.update(kw)
    return hosts.HostConfig(**base)


def test_local_admins_over_encrypted_ntlm_including_an_orphaned_sid(host):
    with hosts.Host(_config(host.url)) as h:
        members = h.local_admins()
    assert [m.sid for m in members] == [a["sid"] for a in ADMINS]
    assert [m.orphaned for m in members] == [False, False, True]
    assert members[1].name == "JITAD\\JIT-SRV01-Admins"
    assert host.requests and all(r.encrypted for r in host.requests)
    assert host.calls[-1].script == "local_admins" and host.calls[-1].input is None
    assert host.errors == []


def test_one_connection_serves_several_calls_and_input_arrives_as_data(host):
    with hosts.Host(_config(host.url)) as h:
        h.local_admins()
        ended = h.end_sessions("S-1-5-21-7-8-9-2001")
    assert ended.sessions == (3,) and ended.processes == 1
    assert host.calls[-1].input == {"sid": "S-1-5-21-7-8-9-2001"}
    assert "S-1-5-21-7-8-9-2001" not in host.sessions or not host.sessions["S-1-5-21-7-8-9-2001"]


def test_basic_over_https_validated_against_the_ca(ca):
    with WinRMTestHost(users={USER: PASSWORD}, auth="basic", tls=ca, admins=ADMINS) as host:
        with hosts.Host(_config(host.url, transport="basic", ca_bundle=str(ca.ca))) as h:
            assert len(h.local_admins()) == 3


def test_a_certificate_from_another_ca_is_refused(ca, tmp_path):
    other = make_test_ca(tmp_path)
    with WinRMTestHost(users={USER: PASSWORD}, auth="basic", tls=ca, admins=ADMINS) as host:
        with pytest.raises(hosts.HostAuthRefused, match="TLS failed"):
            hosts.Host(_config(host.url, transport="basic", ca_bundle=str(other.ca))).local_admins()
        assert host.calls == []


def test_wrong_password_and_refused_logon(host):
    with pytest.raises(hosts.HostAuthRefused, match="refused jitad's credentials"):
        hosts.Host(_config(host.url, password="wrong")).local_admins()
    host.fail = "refuse_auth"
    with pytest.raises(hosts.HostAuthRefused):
        hosts.Host(_config(host.url)).local_admins()


def test_nothing_listening_is_unreachable(host):
    url = host.url
    host.stop()
    with pytest.raises(hosts.HostUnreachable, match="connection refused") as e:
        hosts.Host(_config(url)).local_admins()
    assert e.value.transient


@pytest.mark.parametrize("mode", ["hang", "stall"])
def test_a_hung_command_or_silent_server_ends_at_the_deadline(host, mode):
    """GIVEN a command that never finishes (Receive answers the operation-timeout fault, which pywinrm alone
    would retry forever) or a server that never answers WHEN jitad runs a script THEN HostTimedOut: the
    deadline, not the server, ends the call (without it this test would never return)."""
    host.fail = mode
    with pytest.raises(hosts.HostTimedOut) as e:
        hosts.Host(_config(host.url)).local_admins()
    assert e.value.transient
    if mode == "hang":
        assert host.actions().count("Receive") >= 2  # it kept asking, within the deadline


def test_an_unsealed_reply_to_sealed_messages_is_refused(host):
    """GIVEN messages sealed over HTTP WHEN the replies come back unsealed (someone on the path who let the logon
    through answers the commands in plain text) THEN the call is refused, never read as the host's answer."""
    host.fail = "plain_replies"
    with pytest.raises(hosts.HostAuthRefused, match="was not sealed"):
        hosts.Host(_config(host.url)).local_admins()
    assert any(r.encrypted for r in host.requests)


def test_a_dropped_connection_is_unreachable(host):
    host.fail = "drop"
    with pytest.raises(hosts.HostUnreachable, match="connection"):
        hosts.Host(_config(host.url)).local_admins()


def test_faults_and_failing_scripts_are_script_failures(host):
    host.fail = "fault"
    with pytest.raises(hosts.HostScriptFailed, match="WS-Management fault") as e:
        hosts.Host(_config(host.url)).local_admins()
    assert not e.value.transient
    host.fail = "script_error"
    with pytest.raises(hosts.HostScriptFailed, match="exited with 2: Access is denied") as e:
        hosts.Host(_config(host.url)).local_admins()
    assert e.value.exit_code == 2


def test_a_connection_is_not_reused_after_a_failure(host):
    h = hosts.Host(_config(host.url))
    h.local_admins()
    assert h._protocol is not None
    host.fail = "drop"
    with pytest.raises(hosts.HostUnreachable):
        h.local_admins()
    assert h._protocol is None  # dropped: a session in an unknown state (RC4 stream, auth) is never reused
    host.fail = None
    assert len(h.local_admins()) == 3  # a fresh logon, not the broken session


def test_a_redirect_is_never_followed(host):
    """GIVEN a listener that redirects to another host WHEN jitad connects THEN it refuses, and the other
    host never sees jitad's logon."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", host.url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(hosts.HostError, match="redirect"):
            hosts.Host(_config(f"http://127.0.0.1:{server.server_address[1]}/wsman")).local_admins()
    finally:
        server.shutdown()
        server.server_close()
    assert host.requests == []  # the redirect target saw no authenticated request
