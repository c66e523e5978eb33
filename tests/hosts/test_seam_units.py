"""The host seam's pure parts: settings checks, result parsing, SID checks. No host needed."""
import base64
import json

import pytest

from jitad import hosts
from jitad.hosts.script_io import POWERSHELL_ARGS, encoded_command
from jitad.hosts.script_io import parse_result as _parse_result


def _config(**kw):
    base = dict(url="http://srv01.jitad.test:5985/wsman", transport="ntlm", username="JITAD\\svc", password="pw",
                allow_ntlm=True)
    base.update(kw)
    return hosts.HostConfig(**base)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"transport": "basic"}, "only allowed over HTTPS"),
        ({"transport": "certificate"}, "only allowed over HTTPS"),
        ({"url": "https://srv01:5986/wsman"}, "no CA bundle"),
        ({"url": "ftp://srv01/wsman"}, "is not http"),
        ({"password": ""}, "no WinRM username/password"),
        ({"transport": "credssp"}, "unknown WinRM transport"),
        ({"url": "https://srv01:5986/wsman", "ca_bundle": "/ca.pem", "transport": "certificate"}, "client certificate"),
        ({"operation_timeout": 20.0}, "read timeout must exceed"),
        ({"deadline": 10.0}, "deadline must exceed"),
    ],
)
def test_unsafe_or_incomplete_settings_are_refused_before_any_connection(changes, message):
    with pytest.raises(hosts.HostMisconfigured, match=message):
        hosts.Host(_config(**changes))


def test_plain_http_ntlm_is_accepted_because_messages_are_encrypted():
    h = hosts.Host(_config())
    assert h._protocol_for_call().transport.message_encryption == "always"
    assert h._protocol_for_call().transport.proxy is None  # never a proxy from the environment


def test_kerberos_without_its_settings_is_a_clear_configuration_error(settings):
    """GIVEN kerberos is chosen but jitad has no realm, principal and keytab THEN HostMisconfigured naming them."""
    settings.JITAD_KERBEROS_REALM = ""
    h = hosts.Host(_config(transport="kerberos", username="", password=""))
    with pytest.raises(hosts.HostMisconfigured, match="JITAD_KERBEROS_REALM"):
        h.run_script("local_admins")


def test_ntlm_needs_its_profile_to_allow_it():
    with pytest.raises(hosts.HostMisconfigured, match="ALLOW_NTLM"):
        hosts.Host(_config(allow_ntlm=False))


def test_kerberos_names_the_server_by_the_targets_hostname_and_seals_over_https_when_asked(settings):
    """The SPN's host is the target's hostname (a URL may give an address); "always" seals inside TLS too."""
    settings.JITAD_WINRM_MESSAGE_ENCRYPTION = "always"
    c = hosts.config_for(url="https://10.0.0.5:5986/wsman", transport="kerberos", hostname="srv01.corp.example.")
    assert (c.kerberos_host, c.username, c.message_encryption) == (
        "srv01.corp.example", settings.JITAD_KERBEROS_PRINCIPAL, "always")


def test_a_target_saved_without_a_transport_is_kerberos_throughout(settings):
    """A blank transport (a target saved before the field had a default) is Kerberos for every field, not only
    the transport's: jitad's principal as the user, the server named by the target's hostname."""
    c = hosts.config_for(url="https://10.0.0.5:5986/wsman", transport="", hostname="srv01.corp.example")
    assert (c.transport, c.username, c.kerberos_host) == ("kerberos", settings.JITAD_KERBEROS_PRINCIPAL,
                                                          "srv01.corp.example")


def test_unknown_credential_profile():
    with pytest.raises(hosts.HostMisconfigured, match="no WinRM credential profile named 'nope'"):
        hosts.config_for(url="https://x/wsman", profile="nope")


@pytest.mark.parametrize("value", ["S-1-5-21-1-2-3-1105", "S-1-5-32-544"])
def test_sids_pass(value):
    assert hosts.is_sid(value)


@pytest.mark.parametrize("value", ["S-1-5-21-1-2-3-1105'; Remove-Item C:\\ -Recurse; '", "S-1-", "S-1--5", "s-1-5-32-544",
                                   "S-1-5-32-544\n", "", None, 1105, "$(whoami)"])
def test_anything_else_is_refused_before_it_reaches_a_host(value):
    assert not hosts.is_sid(value)
    with pytest.raises(hosts.HostError, match="not a SID"):
        hosts.Host(_config()).end_sessions(value)


@pytest.mark.parametrize("value", ["S-1-5-18", "S-1-5-32-544", "S-1-5-21-1-2-3-500", "S-1-5-21-1-2-3-999"])
def test_sessions_are_only_ended_for_peoples_accounts(value):
    """SYSTEM, built-in groups and well-known accounts (RID below 1000) are never sent to end_sessions."""
    assert hosts.is_sid(value) and not hosts.is_account_sid(value)
    with pytest.raises(hosts.HostError, match="not a SID of a person's account"):
        hosts.Host(_config()).end_sessions(value)


@pytest.mark.parametrize("url", ["https://user:pw@srv01:5986/wsman", "https://srv01:5986/wsman?x=1"])
def test_urls_with_credentials_or_queries_are_refused(url, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(hosts.HostMisconfigured, match="no user, password, query"):
        hosts.Host(_config(url=url, ca_bundle=str(ca)))


def test_a_missing_ca_bundle_file_is_a_configuration_error():
    with pytest.raises(hosts.HostMisconfigured, match="does not exist"):
        hosts.Host(_config(url="https://srv01:5986/wsman", ca_bundle="/nonexistent/ca.pem"))


def test_the_command_line_fits_windows_limits():
    """CreateProcess takes 32,767 characters; the scripts go without cmd.exe (8,191) in between."""
    for name in ("local_admins", "end_sessions"):
        line = " ".join(["powershell.exe", *POWERSHELL_ARGS, encoded_command(name)])
        assert len(line) < 32_000




def test_the_command_line_is_the_constant_script_and_nothing_else():
    """The script travels as -EncodedCommand of the shipped file's text, byte for byte."""
    for name in ("local_admins", "end_sessions"):
        text = base64.b64decode(encoded_command(name)).decode("utf-16-le")
        assert text == hosts.script_text(name)
        assert "$ProgressPreference = 'SilentlyContinue'" in text
        assert "JITAD:" in text
    assert POWERSHELL_ARGS[-1] == "-EncodedCommand"
    with pytest.raises(hosts.HostError):
        hosts.script_text("../settings")


def _line(obj) -> bytes:
    return b"noise\r\nJITAD:" + base64.b64encode(json.dumps(obj).encode()) + b"\r\n"


def test_result_parsing():
    assert _parse_result("x", _line({"a": 1}), b"", 0) == {"a": 1}
    with pytest.raises(hosts.HostScriptFailed, match="exited with 2: Access is denied"):
        _parse_result("x", _line({"error": "Access is denied."}), b"", 2)
    clixml = b'#< CLIXML\r\n<Objs><S S="Error">Boom happened_x000D__x000A_</S></Objs>'
    with pytest.raises(hosts.HostScriptFailed, match="exited with 1: Boom happened") as e:
        _parse_result("x", b"", clixml, 1)
    assert e.value.exit_code == 1
    with pytest.raises(hosts.HostScriptFailed, match="printed no result"):
        _parse_result("x", b"hello", b"", 0)
    with pytest.raises(hosts.HostScriptFailed, match="unreadable result"):
        _parse_result("x", b"JITAD:%%%notbase64", b"", 0)


def test_member_names_and_orphans():
    m = hosts.LocalMember(sid="S-1-5-21-1-2-3-512", path="WinNT://JITAD/Domain Admins", cls="Group")
    assert m.name == "JITAD\\Domain Admins" and not m.orphaned
    o = hosts.LocalMember(sid="S-1-5-21-1-2-3-9999", path="WinNT://S-1-5-21-1-2-3-9999", cls="")
    assert o.orphaned and o.name == o.sid
    local = hosts.LocalMember(sid="S-1-5-21-9-9-9-500", path="WinNT://JITAD/SRV01/Administrator", cls="User")
    assert local.name == "SRV01\\Administrator"


@pytest.mark.parametrize("principal, expected", [
    ("svc-jitad@JITAD.TEST", hosts.HostUnreachable),   # Cannot contact any KDC: the KDC is down, try again
    ("svc-jitad@OTHER.TEST", hosts.HostAuthRefused),   # Cannot find KDC for realm: a setting to fix, not an outage
])
def test_pywinrms_kerberos_failure_is_classified_by_its_error_code(offline_kerberos, settings, principal, expected):
    """GIVEN pywinrm's Kerberos (pykerberos, through its requests_kerberos) failing to make a ticket, as it raises it
    (KerberosExchangeError while handling pykerberos' GSSError) WHEN the seam translates it THEN no KDC reachable is
    HostUnreachable and a realm jitad has no KDC for is HostAuthRefused, though both messages name the KDC."""
    import kerberos as pykerberos
    from winrm.vendor.requests_kerberos.exceptions import KerberosExchangeError

    from jitad.hosts.translation import translated as _translated
    from tests.support.kerberos import closed_port

    offline_kerberos(closed_port())
    settings.JITAD_KERBEROS_PRINCIPAL = principal
    with pytest.raises(expected, match="Kerberos: Cannot (contact any|find) KDC"):
        with _translated("http://srv01.jitad.test:5985/wsman"):
            try:  # requests_kerberos' generate_request_header, as it is written
                _, ctx = pykerberos.authGSSClientInit("HTTP@srv01.jitad.test", principal=principal)
                pykerberos.authGSSClientStep(ctx, "")
            except pykerberos.GSSError as error:
                raise KerberosExchangeError("%s failed: %s" % ("authGSSClientStep()", str(error.args)))
