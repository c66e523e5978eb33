"""The WinRM test host itself, driven by pywinrm's Protocol exactly as jitad's client drives it.

No Django database: these tests only need the host (in this process) and pywinrm.
"""
import base64
import json
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WinRMTransportError, WSManFaultError
from winrm.protocol import Protocol

from tests.support.test_ca import make_test_ca
from tests.support.winrm_host import WinRMTestHost
from tests.support.winrm_host.wsman import parse_duration

SCRIPTS = Path(__file__).resolve().parents[2] / "jitad" / "hosts" / "scripts"
USER, PASSWORD = "JITAD\\svc-winrm", "s3cret:with-colon"
ORPHAN = {"sid": "S-1-5-21-111-222-333-9999", "path": "WinNT://S-1-5-21-111-222-333-9999", "class": ""}
ADMINS = [
    {"sid": "S-1-5-21-111-222-333-500", "path": "WinNT://JITAD/SRV01/Administrator", "class": "User"},
    {"sid": "S-1-5-21-111-222-333-512", "path": "WinNT://JITAD/Domain Admins", "class": "Group"},
    ORPHAN,
]
ALICE = "S-1-5-21-111-222-333-1105"
PS_ARGS = ["-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def host():
    with WinRMTestHost(users={USER: PASSWORD}, admins=ADMINS, sessions={ALICE: [2, 3, 0, 3]}) as h:
        yield h
    assert h.errors == []


def protocol(host, *, user=USER, password=PASSWORD, transport="ntlm", encryption="auto", read=3, op=1, **kw):
    kw.setdefault("ca_trust_path", None)  # not REQUESTS_CA_BUNDLE from the environment
    return Protocol(host.url, transport=transport, username=user, password=password, message_encryption=encryption,
                    read_timeout_sec=read, operation_timeout_sec=op, **kw)


def encoded(script_text: str) -> str:
    return base64.b64encode(script_text.encode("utf-16-le")).decode()


def run(p, script=None, payload=None, *, command="powershell.exe", args=None):
    """open_shell / run_command / Receive until Done / Signal / Delete, as the client does.

    Returns (stdout, stderr, exit code, states seen: False while Running, True when Done).
    """
    env = {"JITAD_INPUT": base64.b64encode(json.dumps(payload).encode()).decode()} if payload is not None else None
    if args is None:
        args = PS_ARGS + [encoded((SCRIPTS / f"{script}.ps1").read_text(encoding="utf-8"))]
    shell_id = p.open_shell(env_vars=env, codepage=65001, noprofile=True)
    command_id = p.run_command(shell_id, command, args)
    out, err, states = b"", b"", []
    while True:
        o, e, code, done = p.get_command_output_raw(shell_id, command_id)
        out, err = out + o, err + e
        states.append(done)
        if done:
            break
    p.cleanup_command(shell_id, command_id)
    p.close_shell(shell_id)
    return out, err, code, states


def result(stdout: bytes) -> dict:
    line = stdout.decode("ascii")
    assert line.startswith("JITAD:") and line.endswith("\r\n") and line.count("\n") == 1
    return json.loads(base64.b64decode(line[len("JITAD:"):-2]).decode("utf-8"))


@pytest.mark.parametrize("encryption", ["auto", "always", "never"])
def test_local_admins_over_ntlm_http(host, encryption):
    out, err, code, states = run(protocol(host, encryption=encryption), "local_admins")

    assert (code, err) == (0, b"")
    assert states == [False, True]  # Running first, then Done
    assert result(out) == {"group": {"sid": "S-1-5-32-544", "name": "Administrators"}, "members": ADMINS}
    assert ORPHAN in result(out)["members"]  # an orphaned SID is still listed, with an empty class
    assert host.actions() == ["Create", "Command", "Receive", "Receive", "Signal", "Delete"]
    assert {r.encrypted for r in host.requests} == {encryption != "never"}
    assert {r.user for r in host.requests} == {USER}
    assert host.calls == [("local_admins", None)]


def test_state_changes_between_calls_are_seen(host):
    with host.lock:
        host.admins.append({"sid": "S-1-5-21-111-222-333-1200", "path": "WinNT://JITAD/jit-alice", "class": "User"})
    host.group_name = "Administrateurs"
    body = result(run(protocol(host), "local_admins")[0])
    assert body["group"]["name"] == "Administrateurs"
    assert [m["sid"] for m in body["members"]][-1] == "S-1-5-21-111-222-333-1200"


def test_basic_over_https_checks_the_test_ca(certs, tmp_path):
    with WinRMTestHost(users={"winrm-basic": "pw"}, auth="basic", tls=certs, admins=ADMINS) as host:
        assert host.url.startswith("https://127.0.0.1:")
        p = protocol(host, user="winrm-basic", password="pw", transport="basic", ca_trust_path=str(certs.ca))
        out, _, code, _ = run(p, "local_admins")
        assert code == 0 and result(out)["members"] == ADMINS
        assert {r.encrypted for r in host.requests} == {False}  # TLS protects it; no message sealing

        other = make_test_ca(tmp_path / "other")
        p = protocol(host, user="winrm-basic", password="pw", transport="basic", ca_trust_path=str(other.ca))
        with pytest.raises(requests.exceptions.SSLError):
            p.open_shell()

        with pytest.raises(InvalidCredentialsError):
            protocol(host, user="winrm-basic", password="nope", transport="basic",
                     ca_trust_path=str(certs.ca)).open_shell()
        host.fail = "refuse_auth"
        with pytest.raises(InvalidCredentialsError):
            protocol(host, user="winrm-basic", password="pw", transport="basic",
                     ca_trust_path=str(certs.ca)).open_shell()
        assert host.errors == []


def test_ntlm_over_https_with_channel_binding(certs):
    with WinRMTestHost(users={USER: PASSWORD}, tls=certs) as host:
        for encryption in ("auto", "always"):
            out, _, code, _ = run(protocol(host, encryption=encryption, ca_trust_path=str(certs.ca)), "local_admins")
            assert code == 0 and result(out)["group"]["sid"] == "S-1-5-32-544"
        assert [r.encrypted for r in host.requests if r.action == "Create"] == [False, True]


def test_basic_needs_tls():
    with pytest.raises(ValueError):
        WinRMTestHost(users={"u": "p"}, auth="basic")


def test_end_sessions_logs_off_and_stops_processes(host):
    p = protocol(host)
    out, err, code, _ = run(p, "end_sessions", {"sid": ALICE})
    assert (code, err) == (0, b"")
    assert result(out) == {"sid": ALICE, "sessions": [2, 3], "processes": 1, "failed": [], "tickets_purged": 0,
                           "remaining": []}
    assert ALICE not in host.sessions
    assert host.calls == [("end_sessions", {"sid": ALICE})]

    out, _, code, _ = run(p, "end_sessions", {"sid": ALICE})  # nothing left: still a success
    assert code == 0 and result(out) == {"sid": ALICE, "sessions": [], "processes": 0, "failed": [],
                                         "tickets_purged": 0, "remaining": []}


def test_end_sessions_purges_live_logon_sessions_and_skips_stale_ones():
    """GIVEN alice has two live logon sessions holding Kerberos tickets and one stale entry (ended, still
    listed by Win32_LoggedOnUser), and bob one live logon session
    WHEN her sessions are ended THEN the two live ones are purged (counted), the stale one is neither
    purged nor reported as remaining, and bob's tickets are untouched."""
    bob = "S-1-5-21-111-222-333-1106"
    logons = {ALICE: [{"id": 0x3E8A1, "tickets": 4, "session": 2}, {"id": 0x3E8B2, "tickets": 1},
                      {"id": 0x3E7C3, "tickets": 0, "stale": True}],
              bob: [{"id": 0x4F001, "tickets": 3, "session": 5}]}
    with WinRMTestHost(users={USER: PASSWORD}, sessions={ALICE: [2, 0]}, logons=logons) as host:
        out, _, code, _ = run(protocol(host), "end_sessions", {"sid": ALICE})
        assert code == 0
        assert result(out) == {"sid": ALICE, "sessions": [2], "processes": 1, "failed": [], "tickets_purged": 2,
                               "remaining": []}
        assert [e["tickets"] for e in host.logons[ALICE]] == [0, 0, 0]
        assert host.logons[bob] == [{"id": 0x4F001, "tickets": 3, "session": 5}]
        assert host.errors == []


def test_a_session_that_survives_logoff_is_reported_as_remaining():
    """GIVEN logoff.exe answers success but alice's processes keep running (the session_survives mode), with
    a stale logon entry beside her live one WHEN her sessions are ended THEN the live logon session is
    reported as remaining with its processes, a process in no listed logon session under logon id "", and
    the stale entry not at all; her processes are still there."""
    logons = {ALICE: [{"id": 0x3E8A1, "tickets": 2, "session": 2}, {"id": 0x3E7C3, "tickets": 0, "stale": True}]}
    with WinRMTestHost(users={USER: PASSWORD}, sessions={ALICE: [2, 2, 0]}, logons=logons) as host:
        host.fail = "session_survives"
        out, _, code, _ = run(protocol(host), "end_sessions", {"sid": ALICE})
        assert code == 0
        assert result(out) == {"sid": ALICE, "sessions": [2], "processes": 0, "failed": [], "tickets_purged": 1,
                               "remaining": [{"logon_id": "0x3e8a1", "processes": 2}, {"logon_id": "", "processes": 1}]}
        assert host.sessions == {ALICE: [2, 2, 0]}

        host.fail = None  # the session ends at last: nothing remains
        out, _, _, _ = run(protocol(host), "end_sessions", {"sid": ALICE})
        assert result(out)["remaining"] == [] and ALICE not in host.sessions


@pytest.mark.parametrize("payload", [{"sid": "S-1-5-21-1; logoff"}, {"sid": "s-1-5-21-1"}, {"user": ALICE}, None,
                                     {"sid": "S-1-5-18"}, {"sid": "S-1-5-21-1-2-3-500"}, {"sid": ALICE + "\n"}])
def test_end_sessions_rejects_what_is_not_a_sid(host, payload):
    out, _, code, _ = run(protocol(host), "end_sessions", payload)
    assert code == 3 and "error" in result(out)
    assert host.sessions == {ALICE: [2, 3, 0, 3]}


def test_unknown_commands_exit_1(host):
    p = protocol(host)
    for command, args in [
        ("powershell.exe", PS_ARGS + [encoded("Get-Process")]),
        ("powershell.exe", ["-NoProfile", "-Command", "Get-Process"]),
        ("powershell.exe", PS_ARGS + ["not-base64!"]),
        ("ipconfig", ["/all"]),
    ]:
        out, err, code, _ = run(p, command=command, args=args)
        assert (code, out) == (1, b"")
        assert b"not supported by the WinRM test host" in err
    # the scripts with one byte changed are unknown too
    text = (SCRIPTS / "local_admins.ps1").read_text(encoding="utf-8") + " "
    assert run(p, args=PS_ARGS + [encoded(text)])[2] == 1
    assert host.calls == []


def test_wrong_password_and_unknown_user_are_refused(host):
    with pytest.raises(InvalidCredentialsError):
        protocol(host, password="wrong").open_shell()
    with pytest.raises(InvalidCredentialsError):
        protocol(host, user="JITAD\\nobody", password=PASSWORD).open_shell()
    assert host.requests == [] and host.auth_failures == 2


def test_concurrent_clients(host):
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(protocol(host), "local_admins")[2]))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [0] * 6 and len(host.calls) == 6


def test_refuse_auth(host):
    p = protocol(host)
    p.open_shell()  # this connection is authenticated...
    host.fail = "refuse_auth"
    with pytest.raises(InvalidCredentialsError):
        p.open_shell()  # ...and refused from now on all the same
    with pytest.raises(InvalidCredentialsError):
        protocol(host).open_shell()
    host.fail = None
    assert run(protocol(host), "local_admins")[2] == 0


def test_hang_times_out_each_receive(host):
    p = protocol(host, read=3, op=1)
    host.fail = "hang"
    shell_id = p.open_shell()
    command_id = p.run_command(shell_id, "powershell.exe", PS_ARGS + [
        encoded((SCRIPTS / "local_admins.ps1").read_text(encoding="utf-8"))])
    started = time.monotonic()
    with pytest.raises(WinRMOperationTimeoutError):
        p.get_command_output_raw(shell_id, command_id)
    assert 0.9 < time.monotonic() - started < 2.5  # held for the client's OperationTimeout (PT1S)
    assert host.calls == []  # it never ran

    host.fail = None  # the machine recovers: the same command completes
    states = [p.get_command_output_raw(shell_id, command_id)[3] for _ in range(2)]
    assert states == [False, True]
    assert host.calls == [("local_admins", None)]


def test_stall_gives_a_read_timeout_and_does_not_block_stop(host):
    host.fail = "stall"
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        protocol(host, read=2, op=1).open_shell()
    assert time.monotonic() - started < 4

    # a client still waiting when the host stops: stop returns at once, the client sees the close
    errors = []
    client = threading.Thread(target=lambda: _catch(errors, protocol(host, read=20, op=10).open_shell))
    client.start()
    _wait_for(lambda: len(host.requests) == 2)
    started = time.monotonic()
    host.stop()
    assert time.monotonic() - started < 2
    client.join(5)
    assert not client.is_alive() and isinstance(errors[0], requests.exceptions.ConnectionError)


def test_fault_on_command(host):
    host.fail = "fault"
    p = protocol(host)
    shell_id = p.open_shell()
    with pytest.raises(WSManFaultError) as e:
        p.run_command(shell_id, "powershell.exe", PS_ARGS + [encoded("x")])
    assert (e.value.fault_subcode, e.value.wsman_fault_code) == ("w:AccessDenied", 5)
    p.close_shell(shell_id)


@pytest.mark.parametrize("encryption", ["auto", "never"])
def test_drop_closes_the_connection(host, encryption):
    host.fail = "drop"
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol(host, encryption=encryption).open_shell()
    assert host.actions() == ["Create"]


def test_script_error_exits_2(host):
    host.fail = "script_error"
    out, _, code, _ = run(protocol(host), "end_sessions", {"sid": ALICE})
    assert code == 2 and result(out) == {"error": "Access is denied."}
    assert host.sessions == {ALICE: [2, 3, 0, 3]}
    assert host.calls == [("end_sessions", {"sid": ALICE})]


def test_every_reply_relates_to_its_request(host):
    p = protocol(host)
    pairs = []
    send = p.transport.send_message
    p.transport.send_message = lambda message: pairs.append((message, send(message))) or pairs[-1][1]
    run(p, "local_admins")

    ns = {"s": "http://www.w3.org/2003/05/soap-envelope", "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing"}
    assert len(pairs) == 6
    for request, reply in pairs:
        message_id = ET.fromstring(request).findtext("env:Header/a:MessageID", namespaces={**ns, "env": ns["s"]})
        assert ET.fromstring(reply).findtext("s:Header/a:RelatesTo", namespaces=ns) == message_id


def test_bad_requests_are_answered_not_crashed(host):
    p = protocol(host)
    with pytest.raises(WSManFaultError) as e:
        p.get_command_output_raw("00000000-0000-0000-0000-000000000000", "1")
    assert e.value.fault_subcode == "w:InvalidSelectors"
    shell_id = p.open_shell()
    with pytest.raises(WSManFaultError):
        p.get_command_output_raw(shell_id, "no-such-command")
    with pytest.raises(WinRMTransportError):
        p.send_message("<not-xml")
    with pytest.raises(WSManFaultError):
        p.send_message('<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header/>'
                       "<env:Body/></env:Envelope>")
    assert run(protocol(host), "local_admins")[2] == 0  # still serving


def test_nothing_listening_after_stop_and_back_on_restart(host):
    url = host.url
    host.stop()
    assert host.url == url
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol(host).open_shell()
    host.start()
    assert host.url == url and run(protocol(host), "local_admins")[2] == 0


def test_operation_timeout_durations():
    assert parse_duration("PT20S") == 20
    assert parse_duration("PT1.5S") == 1.5
    assert parse_duration("PT1M") == 60
    assert parse_duration(None) == parse_duration("junk") == 60


def _catch(errors, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        errors.append(e)


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
