"""The approver's side of the portal: the nav's count, the /approvals/ list and its live part."""
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jitad.elevation import services
from jitad.elevation.models import AccessRequest

from .builders import policy, target, user

pytestmark = pytest.mark.django_db
APPROVALS = reverse("elevation:approvals")
LIVE = reverse("elevation:approvals-live")
NAV = reverse("elevation:approvals-nav")
ACCESS = reverse("elevation:access")


@pytest.fixture
def world():
    t = target("SRV01")
    p = policy(t)
    return {"target": t, "policy": p, "alice": user("alice", "Ops"), "lead": user("lead", "Leads"),
            "other": user("other", "Ops")}


def _nav_count(html: str):
    m = re.search(r'id="nav-approvals" data-count="(\d+)"', html)
    return int(m.group(1)) if m else None


def test_nav_counts_requests_waiting_for_the_approver(world, verified_client):
    services.request_create(requester=world["alice"], target=world["target"], duration_minutes=30, justification="patch")
    services.request_create(requester=world["other"], target=world["target"], duration_minutes=60)
    page = verified_client(world["lead"]).get(ACCESS).content.decode()
    assert _nav_count(page) == 2
    assert f'href="{APPROVALS}"' in page


def test_nav_shows_nothing_to_someone_who_approves_nothing(world, verified_client):
    services.request_create(requester=world["alice"], target=world["target"], duration_minutes=30)
    client = verified_client(world["other"])
    with CaptureQueriesContext(connection) as queries:
        page = client.get(ACCESS).content.decode()
    assert _nav_count(page) is None and "nav-approvals" not in page
    # No COUNT of a decision queue (the queue's subquery is the only one naming an approver).
    assert not any("COUNT" in q["sql"].upper() and '"elevation_approval"."approver_id"' in q["sql"]
                   for q in queries.captured_queries)


def test_list_shows_each_request_with_a_link_to_its_decision_page(world, verified_client):
    req = services.request_create(requester=world["alice"], target=world["target"], duration_minutes=90,
                                  justification="patch tuesday", ticket="CHG-1")
    page = verified_client(world["lead"]).get(APPROVALS).content.decode()
    row = re.search(rf'<tr id="approval-{req.pk}".*?</tr>', page, re.S).group(0)
    assert "alice" in row and "SRV01" in row and "patch tuesday" in row and "CHG-1" in row
    assert "1 h 30 min" in row
    assert f'href="/admin/elevation/accessrequest/{req.pk}/change/"' in row


def test_list_shows_the_open_stage(world, verified_client):
    req = services.request_create(requester=world["alice"], target=world["target"], duration_minutes=30)
    AccessRequest.objects.filter(pk=req.pk).update(stages=[
        {"name": "peer", "approvals_required": 1, "approver_groups": ["Leads"], "distinct_groups": False,
         "escalation": None, "timeout": None},
        {"name": "security", "approvals_required": 1, "approver_groups": ["Sec"], "distinct_groups": False,
         "escalation": None, "timeout": None},
    ], stage=0)
    page = verified_client(world["lead"]).get(APPROVALS).content.decode()
    row = re.search(rf'<tr id="approval-{req.pk}".*?</tr>', page, re.S).group(0)
    assert "peer" in row and "1 of 2" in row


def test_live_part_answers_204_until_the_list_changes(world, verified_client):
    client = verified_client(world["lead"])
    first = client.get(LIVE)
    version = re.search(r'data-version="([^"]+)"', first.content.decode()).group(1)
    assert client.get(LIVE, {"v": version}).status_code == 204
    req = services.request_create(requester=world["alice"], target=world["target"], duration_minutes=30)
    changed = client.get(LIVE, {"v": version})
    assert changed.status_code == 200 and f'id="approval-{req.pk}"' in changed.content.decode()


def test_a_decided_request_leaves_the_list_and_the_count(world, verified_client):
    req = services.request_create(requester=world["alice"], target=world["target"], duration_minutes=30)
    client = verified_client(world["lead"])
    assert _nav_count(client.get(NAV).content.decode()) == 1
    services.request_deny(request=req, approver=world["lead"], comment="not now")
    assert _nav_count(client.get(NAV).content.decode()) == 0
    assert f'id="approval-{req.pk}"' not in client.get(APPROVALS).content.decode()


def test_a_person_who_approves_nothing_sees_an_empty_list(world, verified_client):
    services.request_create(requester=world["alice"], target=world["target"], duration_minutes=30)
    page = verified_client(world["other"]).get(APPROVALS).content.decode()
    assert "Nothing is waiting for your decision" in page


def test_a_non_staff_approver_can_open_the_decision_page(world, verified_client):
    req = services.request_create(requester=world["alice"], target=world["target"], duration_minutes=30)
    assert not world["lead"].is_staff
    response = verified_client(world["lead"]).get(f"/admin/elevation/accessrequest/{req.pk}/change/")
    assert response.status_code == 200
