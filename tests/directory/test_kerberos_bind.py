"""jitad's own bind with Kerberos: SASL GSSAPI with the keytab of its service principal, against the Samba DC.

No bind DN and no password: the ticket comes from the DC's KDC with svc-jitad's keys (exported by
samba-tool), inside LDAPS or StartTLS, bound to that TLS channel. ldap3 offers no SASL
signing or sealing layer, so the bind needs a DC that lets TLS stand for them: Samba's
``ldap server require strong auth`` = ``allow_sasl_over_tls`` (or ``no``); with ``yes``, its
default, Samba refuses it and jitad says what to change.
"""
import dataclasses
import re
import subprocess

import pytest

from jitad import directory
from jitad.directory.config import DirectoryConfig


def _restart_with(dc, value: str | None) -> None:
    conf = re.sub(r"\tldap server require strong auth = .*\n", "", dc.smb_conf.read_text())
    if value is not None:
        conf = conf.replace("[global]\n", f"[global]\n\tldap server require strong auth = {value}\n", 1)
    dc.smb_conf.write_text(conf)
    dc.stop()
    dc.start()


@pytest.fixture(scope="module")
def sasl_over_tls(samba_dc, kerberos_realm):
    """The session's DC with ``ldap server require strong auth = allow_sasl_over_tls``, set back after the module."""
    _restart_with(samba_dc, "allow_sasl_over_tls")
    yield samba_dc
    _restart_with(samba_dc, None)


def _kerberos_config(**changes) -> DirectoryConfig:
    return dataclasses.replace(DirectoryConfig.from_settings(), auth="kerberos", bind_dn="", bind_password="", **changes)


def _bound_as_svc_jitad(d: directory.Directory, kerberos_realm) -> bool:
    """The connection is bound, reads what an anonymous one may not (Samba has no Who am I? operation), and the
    credential cache holds svc-jitad's ticket for the DC's ldap/ SPN: the bind was Kerberos, as jitad's principal."""
    tickets = subprocess.run(["klist", "-c", kerberos_realm.env["JITAD_KERBEROS_CCACHE"]], capture_output=True,
                             text=True).stdout
    return (d._conn.bound and d.find_user("Administrator").sid.endswith("-500")
            and f"Default principal: {kerberos_realm.principal}" in tickets and "ldap/dc1.jitad.test@JITAD.TEST" in tickets)


def test_samba_default_strong_auth_refuses_it_with_what_to_change(samba_dc, kerberos_realm):
    """GIVEN Samba's default (require strong auth = yes: SASL must sign or seal even inside TLS)
    WHEN jitad binds with Kerberos THEN it is a configuration error that names the setting, not a retry loop."""
    with pytest.raises(directory.DirectoryMisconfigured, match="allow_sasl_over_tls"):
        directory.connect(_kerberos_config())


def test_kerberos_bind_over_ldaps_with_no_password(sasl_over_tls, kerberos_realm):
    """GIVEN the DC lets TLS stand for SASL signing WHEN jitad binds with its keytab over LDAPS
    THEN it is svc-jitad, and reads the directory as itself."""
    with directory.connect(_kerberos_config()) as d:
        assert _bound_as_svc_jitad(d, kerberos_realm)


def test_kerberos_bind_over_starttls(sasl_over_tls, kerberos_realm):
    """The same over ldap:// with StartTLS: the channel binding is taken from the upgraded socket."""
    config = _kerberos_config(urls=(f"ldap://{sasl_over_tls.host}:389",), start_tls=True)
    with directory.connect(config) as d:
        assert _bound_as_svc_jitad(d, kerberos_realm)


def test_settings_choose_kerberos_and_the_session_uses_it(sasl_over_tls, kerberos_realm, settings):
    """GIVEN JITAD_LDAP_AUTH=kerberos and no bind password in the settings WHEN a worker's session binds
    THEN it is jitad's principal (and the DC probe binds the same way)."""
    settings.JITAD_LDAP_AUTH = "kerberos"
    settings.JITAD_LDAP_BIND_DN = ""
    settings.JITAD_LDAP_BIND_PASSWORD = ""
    with directory.session() as d:
        assert _bound_as_svc_jitad(d, kerberos_realm)
    assert set(directory.probe_each(deadline=10).values()) == {None}


def test_a_dc_name_without_its_ldap_spn_is_a_clear_error(sasl_over_tls, kerberos_realm):
    """GIVEN the DC is named by a host name no account has ldap/ for WHEN jitad binds THEN the missing SPN is named."""
    with pytest.raises(directory.DirectoryMisconfigured, match="Server not found in Kerberos database.*ldap/nosuch.jitad.test"):
        directory.connect(_kerberos_config(tls_names=("nosuch.jitad.test", sasl_over_tls.tls_name)))
