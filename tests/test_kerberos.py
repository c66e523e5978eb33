"""jitad's Kerberos identity without a KDC that answers: the krb5.conf it writes, how long it waits, how it tells
an outage from a refusal. Real MIT Kerberos (python-gssapi, a keytab from ktutil); KDCs on 127.0.0.1 that refuse
connections or take them and never answer."""
import socket
import threading
import time

import pytest

from jitad import kerberos
from tests.support.kerberos import closed_port

REALM = "JITAD.TEST"


def test_the_krb5_conf_names_servers_as_configured_and_asks_over_tcp_first():
    """GIVEN KDCs named in the settings THEN the krb5.conf jitad writes never asks DNS for KDCs or the realm, never
    canonicalises or reverse-resolves a server's name, and asks over TCP first (udp_preference_limit = 1, the value
    MIT's documentation gives for it; 1.20 reads 0 the same way); without KDCs THEN DNS SRV records find them."""
    text = kerberos.krb5_conf(REALM, ["dc1.jitad.test", "dc2.jitad.test:88"])
    settings_ = dict(line.strip().split(" = ", 1) for line in text.splitlines() if " = " in line and "{" not in line)
    assert settings_["dns_lookup_kdc"] == "false" and settings_["dns_lookup_realm"] == "false"
    assert settings_["dns_canonicalize_hostname"] == "false" and settings_["rdns"] == "false"
    assert settings_["udp_preference_limit"] == "1" and settings_["forwardable"] == "false"
    assert "kdc = dc1.jitad.test\n" in text and "kdc = dc2.jitad.test:88\n" in text
    assert "dns_lookup_kdc = true" in kerberos.krb5_conf(REALM, [])


def test_no_kdc_answering_is_transient_and_a_realm_without_a_kdc_is_a_refusal(offline_kerberos):
    """GIVEN the realm's KDC refusing connections WHEN jitad asks for a ticket THEN transient (try again later);
    GIVEN a principal in a realm jitad has no KDC for ("Cannot find KDC for realm": its words name the KDC, it used
    to be counted as an outage and retried for ever) THEN a refusal to fix. Told apart by MIT's error codes."""
    offline_kerberos(closed_port())
    with pytest.raises(kerberos.KerberosNoTicket, match="Cannot contact any KDC") as e:
        kerberos.get_ticket("HTTP", "srv01.jitad.test", timeout=20)
    assert e.value.transient

    from django.conf import settings
    settings.JITAD_KERBEROS_PRINCIPAL = "svc-jitad@OTHER.TEST"
    with pytest.raises(kerberos.KerberosNoTicket, match="Cannot find KDC for realm") as e:
        kerberos.get_ticket("HTTP", "srv01.jitad.test", timeout=20)
    assert not e.value.transient


def test_a_kdc_that_never_answers_is_waited_for_only_as_long_as_the_setting_says(offline_kerberos):
    """GIVEN a KDC that takes the connection (TCP) and the datagram (UDP) and never answers (MIT Kerberos 1.20 then
    waits about a minute: it has no request_timeout) WHEN jitad asks for a ticket with a 1 s bound THEN it gives up
    after about 1 s, transient, naming the setting; asked again at once THEN it waits on the same exchange, no
    second thread asks the KDC."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", tcp.getsockname()[1]))
    try:
        offline_kerberos(tcp.getsockname()[1])
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(kerberos.KerberosNoTicket, match="JITAD_KERBEROS_TIMEOUT") as e:
                kerberos.get_ticket("HTTP", "srv01.jitad.test", timeout=1)
            assert e.value.transient and time.monotonic() - started < 3
        asking = [t for t in threading.enumerate() if t.name.startswith("jitad-kerberos-")]
        assert len(asking) == 1
    finally:
        tcp.close()
        udp.close()


@pytest.mark.parametrize("minor, transient", [
    (kerberos.KRB5_KDC_UNREACH, True),
    (kerberos.KRB5_KDC_UNREACH + (1 << 32), True),  # python-gssapi gives the OM_uint32, unsigned
    (kerberos.KRB5KDC_ERR_SVC_UNAVAILABLE, True),
    (-1765328230, False),  # KRB5_REALM_UNKNOWN: Cannot find KDC for requested realm
    (-1765328236, False),  # KRB5_KDCREP_SKEW: Clock skew too great in KDC reply
    (-1765328370, False),  # KRB5KDC_ERR_ETYPE_NOSUPP: KDC has no support for encryption type
    (-1765328377, False),  # KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN
    (None, False),
])
def test_kerberos_errors_are_transient_by_code_not_by_words(minor, transient):
    assert kerberos.transient_code(minor) is transient
