"""SIEM receivers for the audit tests: one rsyslogd with TLS and one HEC endpoint per test session."""
import re

import pytest

from tests.support.siem_hec import HecReceiver
from tests.support.siem_rsyslog import Rsyslog
from tests.support.test_ca import make_test_ca

SD = re.compile(r'\[jitad@32473 seq="(\d+)" hash="([0-9a-f]{64})" prev_hash="([0-9a-f]{64})"\]')


@pytest.fixture(scope="session")
def siem_certs(tmp_path_factory):
    return make_test_ca(tmp_path_factory.mktemp("siem-ca"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory):
    """A CA that signed nothing the receivers present: trusting only it must fail validation."""
    return make_test_ca(tmp_path_factory.mktemp("other-ca"), ca_name="not the receivers' CA")


@pytest.fixture(scope="session")
def rsyslog(tmp_path_factory, siem_certs):
    r = Rsyslog(tmp_path_factory.mktemp("rsyslog"), siem_certs).start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def hec(siem_certs):
    h = HecReceiver(siem_certs).start()
    yield h
    h.stop()


def syslog_seqs(lines: list[str]) -> list[tuple[int, str, str]]:
    """(seq, hash, prev_hash) of each jitad syslog line, in the order received."""
    out = []
    for line in lines:
        m = SD.search(line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3)))
    return out
