"""The counters at the seams count real calls: WinRM against the test host (and a dead one), MFA codes refused.

Read from this process's registry (no PROMETHEUS_MULTIPROC_DIR in the test process), the way /metrics
serves them; test_metrics.py reads a worker's over HTTP.
"""
import socket

import pytest
from prometheus_client import REGISTRY

from jitad import hosts
from jitad.accounts.mfa import mfa_check_code
from tests.support.mfa import totp_code, totp_device
from tests.support.winrm_host import WinRMTestHost

USER, PASSWORD = "JITAD\\svc-count", "Count-Pw-1"


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _config(url):
    # The test host speaks NTLM here (Kerberos has its own tests): a profile allows it explicitly.
    return hosts.HostConfig(url=url, username=USER, password=PASSWORD, transport="ntlm", allow_ntlm=True,
                            connect_timeout=1, read_timeout=3, operation_timeout=2, deadline=5)


def test_winrm_runs_are_timed_and_failures_counted_by_the_seams_error():
    """GIVEN the WinRM test host WHEN jitad reads its local Administrators THEN one more timed run of the
    local_admins script; GIVEN a port nothing listens on THEN one more HostUnreachable error for it."""
    runs = _value("jitad_winrm_call_seconds_count", script="local_admins")
    errors = _value("jitad_winrm_call_errors_total", script="local_admins", error="HostUnreachable")
    with WinRMTestHost(users={USER: PASSWORD}, admins=[]) as host:
        with hosts.Host(_config(host.url)) as h:
            h.local_admins()
    assert _value("jitad_winrm_call_seconds_count", script="local_admins") == runs + 1
    assert _value("jitad_winrm_call_errors_total", script="local_admins", error="HostUnreachable") == errors

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(hosts.HostUnreachable), hosts.Host(_config(f"http://127.0.0.1:{port}/wsman")) as h:
        h.local_admins()
    assert _value("jitad_winrm_call_errors_total", script="local_admins", error="HostUnreachable") == errors + 1


@pytest.mark.django_db
def test_refused_mfa_codes_are_counted_and_accepted_ones_are_not(django_user_model):
    """GIVEN a person's TOTP device WHEN a wrong code is given THEN one more wrong_code failure; WHEN the right one
    follows at once THEN django-otp throttles it: one more throttled failure; once the throttle is over THEN the
    right code passes and nothing more is counted."""
    user = django_user_model.objects.create_user(username="counted")
    device = totp_device(user)
    wrong = _value("jitad_mfa_failures_total", device="totp", reason="wrong_code")
    assert mfa_check_code(user, "000000" if totp_code(device) != "000000" else "111111").error
    assert _value("jitad_mfa_failures_total", device="totp", reason="wrong_code") == wrong + 1
    throttled = _value("jitad_mfa_failures_total", device="totp", reason="throttled")
    assert mfa_check_code(user, totp_code(device)).error  # django-otp's throttle: even the right code waits
    assert _value("jitad_mfa_failures_total", device="totp", reason="throttled") == throttled + 1
    device.refresh_from_db()
    device.throttle_reset()
    assert mfa_check_code(user, totp_code(device)).device is not None
    assert _value("jitad_mfa_failures_total", device="totp", reason="wrong_code") == wrong + 1
    assert _value("jitad_mfa_failures_total", device="totp", reason="throttled") == throttled + 1
