"""The API's view of a request's approval stages, and what it never shows (the client's address)."""
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jitad.accounts.services import api_token_create
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Approval

from .builders import policy, target, user

pytestmark = pytest.mark.django_db


def _api(u):
    _, raw = api_token_create(user=u, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _stage(name, n, groups):
    return {"name": name, "approvals_required": n, "approver_groups": groups, "distinct_groups": False,
            "escalation": None, "timeout": None}


def test_stages_show_passed_open_and_waiting_with_counted_approvals():
    """GIVEN a request in its second of three stages, escalated, with one approval in each of the first two
    WHEN its requester reads it THEN each stage says its state and approvals, the open one its escalation,
    and neither the requester nor an approver sees the address it came from."""
    t = target("SRV01")
    policy(t)
    alice, lead, sec = user("alice", "Ops"), user("lead", "Leads"), user("sec", "Leads")
    req = services.request_create(requester=alice, target=t, duration_minutes=30)
    escalated = timezone.now()
    AccessRequest.objects.filter(pk=req.pk).update(
        stages=[_stage("peer", 1, ["Leads"]), _stage("security", 2, ["Leads"]), _stage("owner", 1, ["Leads"])],
        stage=1, escalated_at=escalated, window_action="extra_stage", client_ip="192.0.2.7")
    Approval.objects.create(request=req, approver=lead, decision=Approval.Decision.APPROVE, stage=0,
                            approver_groups=["Leads"])
    Approval.objects.create(request=req, approver=sec, decision=Approval.Decision.APPROVE, stage=1,
                            approver_groups=["Leads"])

    body = _api(alice).get(f"/api/v1/requests/{req.pk}").json()
    assert body["stage"] == 1 and body["window_action"] == "extra_stage"
    assert [(s["name"], s["state"], s["approvals"], s["approvals_required"]) for s in body["stages"]] == [
        ("peer", "passed", 1, 1), ("security", "open", 1, 2), ("owner", "waiting", 0, 1)]
    assert body["stages"][1]["escalated_at"] is not None
    assert body["stages"][0]["escalated_at"] is None and body["stages"][2]["escalated_at"] is None
    assert "client_ip" not in body and "192.0.2.7" not in str(body)
    listed = _api(user("lead2", "Leads")).get("/api/v1/requests").json()
    assert "192.0.2.7" not in str(listed)


def test_a_request_without_stages_lists_none():
    t = target("SRV01")
    policy(t)
    alice = user("alice", "Ops")
    req = services.request_create(requester=alice, target=t, duration_minutes=30)
    AccessRequest.objects.filter(pk=req.pk).update(stages=[])
    body = _api(alice).get(f"/api/v1/requests/{req.pk}").json()
    assert body["stages"] == [] and body["stage"] == 0
