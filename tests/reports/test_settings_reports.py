"""The KPI settings: a wrong time zone, hours or weekdays stop the start with a clear message."""
import pytest

from tests.test_settings import assert_refused, run_setup


@pytest.mark.parametrize("extra, message", [
    ({"JITAD_REPORT_TIME_ZONE": "Mars/Olympus"}, "JITAD_REPORT_TIME_ZONE"),
    ({"JITAD_REPORT_WORK_START_HOUR": "18", "JITAD_REPORT_WORK_END_HOUR": "8"}, "JITAD_REPORT_WORK_START_HOUR"),
    ({"JITAD_REPORT_WORK_DAYS": "1,2,9"}, "JITAD_REPORT_WORK_DAYS"),
    ({"JITAD_REPORT_PERIOD_DAYS": "0"}, "JITAD_REPORT_PERIOD_DAYS"),
])
def test_bad_kpi_settings_are_refused(tmp_path, extra, message):
    assert_refused(run_setup(tmp_path, extra), message)


def test_good_kpi_settings_start(tmp_path):
    result = run_setup(tmp_path, {"JITAD_REPORT_TIME_ZONE": "Europe/Paris", "JITAD_REPORT_WORK_DAYS": "1,2,3,4,5,6"})
    assert result.returncode == 0, result.stderr[-2000:]
