"""JITAD_SIEM_<NAME>_* variables become destinations; a bad one is a clear start-up error."""
import pytest

from jitad.settings.siem import _destinations


def test_destinations_from_the_environment(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    found = _destinations({
        "JITAD_SIEM_SOC_URL": "syslog+tls://siem.example:6514", "JITAD_SIEM_SOC_CA_FILE": str(ca),
        "JITAD_SIEM_SPLUNK_EU_URL": "https://hec.example:8088/services/collector/event",
        "JITAD_SIEM_SPLUNK_EU_FORMAT": "OCSF", "JITAD_SIEM_SPLUNK_EU_TOKEN": "secret",
        "JITAD_SIEM_ALERT_LAG_SECONDS": "60",
    })
    assert found == {
        "soc": {"url": "syslog+tls://siem.example:6514", "transport": "syslog", "format": "cef", "token": "",
                "ca_file": str(ca)},
        "splunk-eu": {"url": "https://hec.example:8088/services/collector/event", "transport": "https",
                      "format": "ocsf", "token": "secret", "ca_file": ""},
    }


@pytest.mark.parametrize("env, words", [
    ({"JITAD_SIEM_X_URL": "syslog://siem.example:514"}, "syslog+tls://"),
    ({"JITAD_SIEM_X_URL": "http://hec.example/x"}, "https://"),
    ({"JITAD_SIEM_X_URL": "https://user:pw@hec.example/x"}, "_TOKEN"),
    ({"JITAD_SIEM_X_URL": "syslog+tls://s:6514", "JITAD_SIEM_X_FORMAT": "hec"}, "cef, json"),
    ({"JITAD_SIEM_X_URL": "https://h/x", "JITAD_SIEM_X_CA_FILE": "/nonexistent.pem"}, "no such file"),
])
def test_bad_destination_refused(env, words):
    """A refused destination is a problem of the start-up list (jitad.settings raises with all of them) and is
    left out."""
    problems = []
    assert _destinations(env, refuse=problems.append) == {}
    assert len(problems) == 1 and words in problems[0], problems
