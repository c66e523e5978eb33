"""WinRM over Kerberos against a real KDC: the test DC's (Samba), jitad's keytab, and a test host with its SPN's keytab.

jitad's client asks Samba's KDC for a ticket to HTTP/winrm-krb.jitad.test with the keys of its
service principal (JITAD_KERBEROS_KEYTAB, no password anywhere), the test host accepts it with
the keys exported from the DC for that SPN, and every WS-Man message is sealed with the
context's keys over HTTP (and over HTTPS when the settings ask).
"""
import pytest

from jitad import hosts
from tests.support.winrm_host import WinRMTestHost

ADMINS = [{"sid": "S-1-5-21-1-2-3-500", "path": "WinNT://SRV01/Administrator", "class": "User"}]


def _config(url, kerberos_realm, **kw):
    base = dict(url=url, transport="kerberos", hostname=kerberos_realm.host_name)
    base.update(kw)
    return hosts.config_for(**base)


@pytest.fixture
def krb_host(kerberos_realm):
    with WinRMTestHost(users={kerberos_realm.principal: ""}, auth="kerberos", keytab=kerberos_realm.host_keytab,
                       admins=ADMINS) as h:
        yield h


def test_kerberos_over_http_seals_every_message(krb_host, kerberos_realm, winrm_profile):
    """GIVEN a server that speaks Kerberos only WHEN jitad reads its local Administrators over HTTP
    THEN it logs on as its service principal with a ticket from the DC's KDC and every message is sealed."""
    with hosts.Host(_config(krb_host.url, kerberos_realm)) as h:
        members = h.local_admins()
        assert [m.sid for m in members] == ["S-1-5-21-1-2-3-500"]
        h.local_admins()  # the same connection, already authenticated
    assert {r.user for r in krb_host.requests} == {kerberos_realm.principal}
    assert krb_host.requests and all(r.encrypted for r in krb_host.requests)
    assert krb_host.auth_failures == 0 and not krb_host.errors


@pytest.mark.parametrize("encryption, sealed", [("auto", False), ("always", True)])
def test_kerberos_over_https_validates_the_certificate_and_seals_when_asked(
        encryption, sealed, kerberos_realm, winrm_profile, winrm_ca, settings):
    """GIVEN an HTTPS server WHEN JITAD_WINRM_MESSAGE_ENCRYPTION is auto THEN TLS alone protects the messages;
    WHEN it is always THEN they are sealed with Kerberos inside TLS as well."""
    settings.JITAD_WINRM_MESSAGE_ENCRYPTION = encryption
    with WinRMTestHost(users={kerberos_realm.principal: ""}, auth="kerberos", keytab=kerberos_realm.host_keytab,
                       tls=winrm_ca, admins=ADMINS) as server:
        with hosts.Host(_config(server.url, kerberos_realm)) as h:
            assert len(h.local_admins()) == 1
        assert server.requests and all(r.encrypted == sealed for r in server.requests)
        assert not server.errors


def test_a_ticket_for_another_server_is_refused(krb_host, kerberos_realm, ldap_admin):
    """GIVEN jitad names the server by a host name whose SPN belongs to another account (the DC's host/ SPN)
    WHEN it logs on THEN the server cannot read the ticket and jitad gets HostAuthRefused, not a hang or a 500."""
    with pytest.raises(hosts.HostAuthRefused):
        with hosts.Host(_config(krb_host.url, kerberos_realm, hostname="dc1.jitad.test")) as h:
            h.local_admins()
    assert not krb_host.requests and krb_host.auth_failures >= 1


def test_an_unknown_server_name_is_refused_before_anything_is_sent(krb_host, kerberos_realm):
    """GIVEN a host name no account holds an SPN for WHEN jitad logs on THEN the KDC has no ticket for it: refused."""
    with pytest.raises(hosts.HostAuthRefused, match="Server not found in Kerberos database.*HTTP/nosuch.jitad.test"):
        with hosts.Host(_config(krb_host.url, kerberos_realm, hostname="nosuch.jitad.test")) as h:
            h.local_admins()
    assert not krb_host.requests


def test_kerberos_off_is_a_clear_misconfiguration(settings, krb_host):
    settings.JITAD_KERBEROS_REALM = ""
    with pytest.raises(hosts.HostMisconfigured, match="JITAD_KERBEROS_REALM"):
        with hosts.Host(hosts.config_for(url=krb_host.url, transport="kerberos")) as h:
            h.local_admins()


def test_ntlm_is_refused_unless_the_profile_allows_it(settings, winrm_profile):
    """GIVEN a profile without ALLOW_NTLM WHEN a target uses NTLM THEN jitad refuses before any traffic, naming the fix."""
    settings.JITAD_WINRM_PROFILES = {**settings.JITAD_WINRM_PROFILES, "legacy": {**winrm_profile, "allow_ntlm": False}}
    with WinRMTestHost(users={winrm_profile["username"]: winrm_profile["password"]}) as server:
        with pytest.raises(hosts.HostMisconfigured, match="ALLOW_NTLM"):
            hosts.Host(hosts.config_for(url=server.url, transport="ntlm", profile="legacy"))
        with hosts.Host(hosts.config_for(url=server.url, transport="ntlm")) as h:  # the default profile allows it
            assert h.local_admins()
        assert not server.errors


def test_kerberos_over_https_binds_the_ticket_to_the_tls_channel(kerberos_realm, winrm_profile, winrm_ca):
    """GIVEN an HTTPS server that checks logons against another certificate's channel bindings (as a server with
    Extended Protection would see a relayed logon) WHEN jitad logs on THEN it is refused: jitad's ticket carries
    the bindings of the TLS channel it was sent on. The same server with its own bindings lets it in."""
    for wrong, refused in ((True, True), (False, False)):
        with WinRMTestHost(users={kerberos_realm.principal: ""}, auth="kerberos", keytab=kerberos_realm.host_keytab,
                           tls=winrm_ca, admins=ADMINS, wrong_bindings=wrong) as server:
            with hosts.Host(_config(server.url, kerberos_realm)) as h:
                if refused:
                    with pytest.raises(hosts.HostAuthRefused):
                        h.local_admins()
                    assert server.auth_failures >= 1 and not server.requests
                else:
                    assert len(h.local_admins()) == 1
            assert not server.errors
