"""Off-hours activations: a policy with time windows is judged by its own working hours, any other by the
reports' working hours."""
import pytest

from jitad.elevation.models import Policy
from jitad.reports.selectors.kpis import report_build

from .rows import at, grant, person, target

pytestmark = pytest.mark.django_db


def test_a_policy_with_windows_is_judged_by_its_own_hours(settings):
    """GIVEN reports' working hours 8-18 Monday to Friday (UTC) and a night-shift policy whose windows say
    22:00-06:00 every day is 'policy', anything else 'extra_stage'
    WHEN one night-shift grant starts Monday 23:00 and another Monday 10:00, and a grant under a plain policy
    starts Monday 23:00 THEN the night-shift 10:00 one and the plain 23:00 one are off hours, not the
    night-shift 23:00 one."""
    settings.JITAD_REPORT_TIME_ZONE = "UTC"
    settings.JITAD_REPORT_WORK_START_HOUR, settings.JITAD_REPORT_WORK_END_HOUR = 8, 18
    settings.JITAD_REPORT_WORK_DAYS = [1, 2, 3, 4, 5]
    night, plain, u = target("NIGHT01"), target("PLAIN01"), person()
    Policy.objects.filter(targets=night).update(time_windows={
        "timezone": "UTC", "rules": [{"hours": "22:00-06:00", "then": "policy"}], "otherwise": "extra_stage",
        "extra_stage": {"name": "day", "approvals_required": 1, "approver_groups": ["Day"]}})
    in_shift = grant(u, night, activated=at(0, 23), expires=at(1, 0), revoked=at(1, 0))
    day = grant(u, night, activated=at(0, 10), expires=at(0, 11), revoked=at(0, 11))
    late = grant(u, plain, activated=at(0, 23, 30), expires=at(1, 0), revoked=at(1, 0))
    report = report_build(start=at(0), end=at(7))
    assert report.figure("risk", "off_hours_activations").value == 2
    ids = report.figure("risk", "off_hours_activations").records.query["id__in"]
    assert ids == f"{day.pk},{late.pk}" and str(in_shift.pk) not in ids.split(",")
