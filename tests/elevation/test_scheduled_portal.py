"""Scheduled and waiting grants in the portal and the API: the "Start at" field, My access, starts_at in JSON.

Database only: grants made by approving under the ``db`` fixture never reach the worker. The
request service's own handling of ``starts_at`` (its lead limit, storing it) is tested with
the requests; here a spy on it shows what the form and the API hand over.
"""
import re
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from jitad.elevation import services
from jitad.elevation.api import views as api_views
from jitad.elevation.forms import ExtendForm, RequestForm
from jitad.elevation.models import AccessRequest, Grant, Policy, Target
from jitad.elevation import views as portal_views

from .builders import policy, target, user
from .test_api import REQUESTS, Caller, error

pytestmark = pytest.mark.usefixtures("db")
ACCESS_LIVE = reverse("elevation:access-live")


@pytest.fixture
def srv():
    t = target("SRV01", hostname="srv01.jitad.test")
    policy(t, schedule_max_lead_minutes=7 * 1440)
    return t


@pytest.fixture
def spy(monkeypatch):
    """Records the keyword arguments request_create is called with, and calls it."""
    calls = []
    real = services.request_create

    def request_create(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(portal_views.services, "request_create", request_create)
    monkeypatch.setattr(api_views, "request_create", request_create)
    return calls


def _scheduled(requester, approver, t, *, starts_at):
    req = services.request_create(requester=requester, target=t, duration_minutes=60)
    AccessRequest.objects.filter(pk=req.pk).update(starts_at=starts_at)
    services.request_approve(request=req, approver=approver)
    return Grant.objects.get(request=req)


def test_start_at_is_offered_only_where_the_policy_allows_scheduling(verified_client, srv):
    alice = user("alice", "Ops")
    page = verified_client(alice).get(f"{reverse('elevation:request-new')}?target={srv.pk}").content.decode()
    field = re.search(r'<input[^>]*name="starts_at"[^>]*>', page).group(0)
    assert 'type="datetime-local"' in field
    assert "in UTC time, at most 168 h ahead" in page
    Policy.objects.update(schedule_max_lead_minutes=0)
    page = verified_client(alice).get(f"{reverse('elevation:request-new')}?target={srv.pk}").content.decode()
    assert 'name="starts_at"' not in page


@override_settings(TIME_ZONE="Europe/Paris")
def test_the_start_is_read_in_the_portals_time_zone_and_handed_to_the_service(srv):
    p = Policy.objects.get()
    day = (timezone.now() + timedelta(days=2)).date()
    form = RequestForm({"duration_minutes": "1h", "starts_at": f"{day.isoformat()}T02:00"}, policy=p)
    assert form.is_valid(), form.errors
    start = form.service_arguments()["starts_at"]
    assert start.astimezone(dt_timezone.utc) == datetime(day.year, day.month, day.day, 1, 0, tzinfo=dt_timezone.utc)


def test_a_start_in_the_past_is_a_field_error_and_an_empty_one_means_at_once(srv):
    p = Policy.objects.get()
    past = RequestForm({"duration_minutes": "1h", "starts_at": "2020-01-01T02:00"}, policy=p)
    assert not past.is_valid() and "in the past" in past.errors["starts_at"][0]
    now = RequestForm({"duration_minutes": "1h", "starts_at": ""}, policy=p)
    assert now.is_valid() and "starts_at" not in now.service_arguments()


def test_an_extension_has_no_start(srv):
    alice, lead = user("alice", "Ops"), user("lead", "Leads")
    g = _scheduled(alice, lead, srv, starts_at=timezone.now() - timedelta(minutes=1))
    form = ExtendForm(policy=Policy.objects.get(), grant=g, room=60)
    assert "starts_at" not in form.fields


def test_the_portal_form_passes_the_start(verified_client, srv, spy):
    alice = user("alice", "Ops")
    start = (timezone.localtime() + timedelta(days=1)).replace(second=0, microsecond=0)
    response = verified_client(alice).post(f"{reverse('elevation:request-new')}?target={srv.pk}",
                                           {"duration_minutes": "1h", "starts_at": start.strftime("%Y-%m-%dT%H:%M")})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert spy[-1]["starts_at"] == start


def test_my_access_shows_when_a_scheduled_grant_starts_and_whom_a_waiting_one_waits_for(verified_client, srv):
    alice, carol, lead = user("alice", "Ops"), user("carol", "Ops"), user("lead", "Leads")
    start = timezone.now() + timedelta(hours=3)
    g = _scheduled(alice, lead, srv, starts_at=start)
    page = verified_client(alice).get(ACCESS_LIVE).content.decode()
    row = re.search(rf'<tr data-grant-id="{g.pk}" data-state="scheduled".*?</tr>', page, re.S).group(0)
    assert re.search(r"starts <time[^>]*>[^<]+</time>, ends <time", row)
    assert f'id="release-{g.pk}">Cancel' in row and "Ask for more time" not in row

    Target.objects.update(exclusive=Target.Exclusive.WAIT)
    holder = services.request_create(requester=alice, target=srv, duration_minutes=30)
    services.request_approve(request=holder, approver=lead)
    waiting = services.request_create(requester=carol, target=srv, duration_minutes=30)
    services.request_approve(request=waiting, approver=lead)
    w = Grant.objects.get(request=waiting)
    assert w.state == Grant.State.SCHEDULED
    page = verified_client(carol).get(ACCESS_LIVE).content.decode()
    assert re.search(r"waits for alice, who holds it until <time", page)


def test_the_api_takes_a_start_with_its_offset_and_shows_it(srv, spy):
    alice, lead = Caller(user("alice", "Ops")), user("lead", "Leads")
    body = error(alice.post(REQUESTS, {"target": "SRV01", "starts_at": "2030-01-01T02:00:00"}), 400, "invalid")
    assert "offset" in str(body["fields"]["starts_at"])
    assert not AccessRequest.objects.exists()
    ahead = (timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)  # within the policy's 7 days
    plus_one = dt_timezone(timedelta(hours=1))
    made = alice.create("SRV01", starts_at=ahead.astimezone(plus_one).isoformat())
    assert spy[-1]["starts_at"] == ahead
    assert AccessRequest.objects.get(pk=made["id"]).starts_at == ahead  # stored in UTC, the same instant

    start = timezone.now() + timedelta(hours=2)
    g = _scheduled(alice.user, lead, srv, starts_at=start)
    shown = alice.get(f"{REQUESTS}/{g.request_id}").json()
    assert shown["starts_at"] and datetime.fromisoformat(shown["starts_at"].replace("Z", "+00:00")) == start
    assert shown["grant"]["state"] == "scheduled"
    assert datetime.fromisoformat(shown["grant"]["starts_at"].replace("Z", "+00:00")) == start


def test_the_admin_shows_a_scheduled_grant_and_revokes_it_without_ad_work(verified_client, srv):
    alice, lead = user("alice", "Ops"), user("lead", "Leads")
    g = _scheduled(alice, lead, srv, starts_at=timezone.now() + timedelta(hours=3))
    boss = User.objects.create_superuser("boss")
    client = verified_client(boss)
    listing = client.get(reverse("admin:elevation_grant_changelist") + "?view=all")
    assert [r.pk for r in listing.context["cl"].result_list] == [g.pk]
    page = listing.content.decode()
    assert "starts in 2 h" in page or "starts in 3 h" in page
    change = client.get(reverse("admin:elevation_grant_change", args=[g.pk])).content.decode()
    assert "Revoke this grant now" in change and "Starts at" in change and "scheduled" in change
    client.post(reverse("admin:elevation_grant_revoke", args=[g.pk]), {"reason": "window moved"})
    g.refresh_from_db()
    assert g.state == Grant.State.REVOKED and g.revoke_comment == "window moved" and g.membership_removed is None
