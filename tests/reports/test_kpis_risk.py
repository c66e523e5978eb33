"""Risk signals: always on, unused eligibility, off-hours activations (time zone), bursts, out of band, break-glass."""
from datetime import timedelta

import pytest

from jitad.breakglass.models import Checkout, SealedAccount
from jitad.elevation.models import AccessRequest, Grant, HeldRemoval
from jitad.reports.selectors.kpis import report_build
from jitad.reports.services.demo_history import _audit_at

from .rows import at, grant, person, request, target

pytestmark = pytest.mark.django_db


@pytest.fixture
def paris(settings):
    settings.JITAD_REPORT_TIME_ZONE = "Europe/Paris"  # UTC+1 in November
    settings.JITAD_REPORT_WORK_START_HOUR, settings.JITAD_REPORT_WORK_END_HOUR = 8, 18
    settings.JITAD_REPORT_WORK_DAYS = [1, 2, 3, 4, 5]
    return settings


def _value(report, key):
    return report.figure("risk", key).value


def test_off_hours_in_the_local_time_zone(paris):
    """GIVEN activations Monday 06:30 UTC (07:30 Paris), Monday 07:30 UTC (08:30 Paris) and Saturday noon
    WHEN working hours are 8-18 Monday to Friday in Paris
    THEN two are outside working hours, the Saturday one and the early Monday one."""
    t, u = target("SRV-A"), person()
    early = grant(u, t, activated=at(0, 6, 30), expires=at(0, 7), revoked=at(0, 7))
    grant(u, t, activated=at(0, 7, 30), expires=at(0, 8), revoked=at(0, 8))
    sat = grant(u, t, activated=at(5, 12), expires=at(5, 13), revoked=at(5, 13))
    report = report_build(start=at(0), end=at(7))
    assert _value(report, "off_hours_activations") == 2
    rows = report.section("risk").tables[2].rows
    assert [r["local"] for r in rows] == ["Mon 07:30", "Sat 13:00"]
    assert report.figure("risk", "off_hours_activations").records.query["id__in"] == f"{early.pk},{sat.pk}"
    paris.JITAD_REPORT_TIME_ZONE = "UTC"
    assert _value(report_build(start=at(0), end=at(7)), "off_hours_activations") == 3


def test_always_on_by_share_of_working_hours_or_by_run_of_days(paris):
    """GIVEN w elevated 08:00-13:30 Paris every working day (55 % of 50 h), v one hour on three consecutive days,
    z one hour once
    WHEN the thresholds are 50 % or 3 days
    THEN w and v are always on, z is not."""
    paris.JITAD_REPORT_ALWAYS_ON_SHARE_PCT, paris.JITAD_REPORT_ALWAYS_ON_DAYS = 50, 3
    t = target("SRV-A")
    w, v, z = person("w"), person("v"), person("z")
    for d in range(5):
        grant(w, t, activated=at(d, 7), expires=at(d, 12, 30), revoked=at(d, 12, 30))
    for d in range(3):
        grant(v, t, activated=at(d, 13), expires=at(d, 14), revoked=at(d, 14))
    grant(z, t, activated=at(1, 9), expires=at(1, 10), revoked=at(1, 10))
    report = report_build(start=at(0), end=at(5))
    rows = report.section("risk").tables[0].rows
    assert [(r["user"], r["working_share_pct"], r["longest_run_days"]) for r in rows] == [("w", 55.0, 5), ("v", 6.0, 3)]
    assert _value(report, "always_on") == 2


def test_unused_eligible_case_insensitive_by_name_and_group():
    target("SRV-A", policy="servers", eligible_users=["Ursula"], eligible_groups=["ops"])
    person("ursula")
    person("oscar", groups=["OPS"])
    pete = person("pete", groups=["ops"])
    person("nobody")
    request(pete, target("SRV-B", policy="servers"), created=at(5))
    report = report_build(start=at(0), end=at(10))
    assert [r["user"] for r in report.section("risk").tables[1].rows] == ["oscar", "ursula"]
    assert _value(report, "unused_eligible") == 2
    assert _value(report_build(start=at(0), end=at(10), policy="none-such"), "unused_eligible") is None


def test_bursts_of_denied_or_failed_requests(settings):
    settings.JITAD_REPORT_BURST_THRESHOLD, settings.JITAD_REPORT_BURST_WINDOW_MINUTES = 3, 60
    t = target("SRV-A")
    x, y = person("x"), person("y")
    request(x, t, created=at(1, 20), state=AccessRequest.State.DENIED)
    request(x, t, created=at(1, 20, 20), state=AccessRequest.State.DENIED)
    failed = grant(x, t, activated=None, created=at(1, 20, 50), expires=at(1, 22), state=Grant.State.GRANT_FAILED)
    AccessRequest.objects.filter(pk=failed.request_id).update(created_at=at(1, 20, 50))
    request(y, t, created=at(1, 20), state=AccessRequest.State.DENIED)
    request(y, t, created=at(1, 21, 30), state=AccessRequest.State.DENIED)
    report = report_build(start=at(0), end=at(5))
    assert _value(report, "request_bursts") == 1
    assert [(r["user"], r["requests"]) for r in report.section("risk").tables[3].rows] == [("x", 3)]


def test_out_of_band_and_breakglass_with_filters():
    a, b = target("SRV-A"), target("SRV-B")
    _audit_at(at(2), actor="system:reconciler", action="membership.removed_unbacked", object_type="group",
              object_id=a.group_dn[:64], data={"group": a.group_dn, "member": "CN=m"})
    HeldRemoval.objects.create(group_dn=b.group_dn, member_dn="CN=n", member_key="cn=n", held_at=at(3),
                               batch="00000000-0000-0000-0000-000000000002")
    holder = person("carol")
    account = SealedAccount.objects.create(name="bg-01", state=SealedAccount.State.SEALED)
    Checkout.objects.create(account=account, holder=holder, incident_ref="INC1", reason="DC down", duration_minutes=60,
                            state=Checkout.State.CLOSED, opened_at=at(4), checkin_at=at(4) + timedelta(hours=1))
    report = report_build(start=at(0), end=at(10))
    assert (_value(report, "out_of_band"), _value(report, "breakglass_checkouts")) == (2, 1)
    narrowed = report_build(start=at(0), end=at(10), target="SRV-A")
    assert (_value(narrowed, "out_of_band"), _value(narrowed, "breakglass_checkouts")) == (1, None)
    assert _value(report_build(start=at(0), end=at(10), tier=0), "breakglass_checkouts") == 1
