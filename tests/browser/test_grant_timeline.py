"""The requester's grant page in a real browser: from My access to the grant's timeline, with its session evidence.

GIVEN an AD user whose request for an auto-approved target was applied by the real worker against
the Samba DC, and Security log events stored for the grant (as the collection stores them)
WHEN they open My access and follow the grant's link
THEN the grant page shows the timeline: the request, the AD membership added, the logon in
words, and the logon after the grant's end flagged; the CSV export link downloads the evidence.
"""
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from jitad.elevation import services
from jitad.elevation.models import Grant, SessionEvent
from tests.browser.conftest import shot
from tests.browser.flows import login_and_enrol
from tests.elevation.helpers import wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_requester_opens_the_grant_page_from_my_access_and_sees_the_timeline(page, portal, ad_person,
                                                                                   make_target):
    sam, password = ad_person("admins", prefix="tl")
    target = make_target()
    login_and_enrol(page, portal, sam, password, name_prefix="timeline-", next_path="/access/")
    person = get_user_model().objects.get(username=sam)
    req = services.request_create(requester=person, target=target, duration_minutes=30,
                                  justification="rotate the backup agent", ticket="CHG-77")
    grant = wait_state(Grant.objects.get(request=req).pk, Grant.State.ACTIVE)
    now = timezone.now()
    for record, minutes, fields in ((501, 1, {"event_id": SessionEvent.Kind.LOGON, "logon_type": 10, "source": "10.0.0.5"}),
                                    (502, 2, {"event_id": SessionEvent.Kind.PROCESS,
                                              "process": "C:\\Windows\\System32\\cmd.exe"}),
                                    (503, 45, {"event_id": SessionEvent.Kind.LOGON, "logon_type": 3,
                                               "after_end": True})):
        SessionEvent.objects.create(grant=grant, host=target.name, record=record, at=now + timedelta(minutes=minutes),
                                    sid=grant.user_sid, collected_at=now, **fields)

    page.goto(portal + "/access/")
    row = page.locator(f"[data-grant-id='{grant.pk}']")
    expect(row).to_have_attribute("data-state", "active")
    row.get_by_role("link", name=re.compile(f"grant #{grant.pk}")).click()

    expect(page).to_have_url(re.compile(rf"/grants/{grant.pk}/$"))
    expect(page.get_by_role("heading", name=f"Grant #{grant.pk}: {target.name}")).to_be_visible()
    timeline = page.locator("#timeline")
    expect(timeline.locator("tr[data-kind='request']")).to_contain_text("ticket CHG-77: rotate the backup agent")
    expect(timeline.locator("tr[data-ref='grant.active']")).to_contain_text("AD membership added")
    expect(timeline.locator("tr[data-kind='session']", has_text="logon (RemoteInteractive, from 10.0.0.5)")).to_have_count(1)
    expect(timeline.locator("tr[data-kind='session']", has_text="process C:\\Windows\\System32\\cmd.exe")).to_have_count(1)
    flagged = timeline.locator("tr[data-flagged]")
    expect(flagged).to_have_count(1)
    expect(flagged).to_contain_text("after the grant ended")
    expect(page.locator("#session-counts")).to_contain_text("2 logons, 1 process, 1 event after the end")
    shot(page, "timeline-01-grant-page")

    with page.expect_download() as download:
        page.locator("#evidence-csv").click()
    body = open(download.value.path(), encoding="utf-8").read()
    assert "logon (RemoteInteractive, from 10.0.0.5)" in body and "rotate the backup agent" in body
