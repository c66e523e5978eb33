"""The verified MFA step behind each request and decision is recorded: portal, REST API, admin, auto-approval.

Database only: manual policies create no grant work that reaches a worker (the test's
transaction never commits), and the auto-approved case only needs the rows and the audit.
"""
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from jitad.accounts.mfa import MfaStep
from jitad.accounts.services import api_token_create
from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Approval, Grant, Policy
from tests.support.mfa import backup_codes, stale_age, totp_code, totp_device

from .builders import policy, target, user

pytestmark = pytest.mark.usefixtures("db")

QUEUE = "/admin/elevation/accessrequest/"


@pytest.fixture
def world():
    srv = target("SRV01", hostname="srv01.jitad.test")
    policy(srv, name="ops-servers")
    return {"srv": srv, "alice": user("alice", "Ops"), "lead": user("lead", "Leads")}


def _event(action: str, req: AccessRequest) -> dict:
    return AuditEvent.objects.filter(action=action, object_type="request", object_id=str(req.pk)).latest("id").data


def _recent(at) -> bool:
    return at is not None and abs((timezone.now() - at).total_seconds()) < 120


# -- portal -------------------------------------------------------------------------------------
def test_portal_request_records_the_session_s_totp_step(world, verified_client):
    """GIVEN a session verified with a TOTP app 5 minutes ago WHEN alice asks on the portal
    THEN the request records totp and that verification time (not the request's time)."""
    client = verified_client(world["alice"], age_seconds=300)
    response = client.post(f"{reverse('elevation:request-new')}?target={world['srv'].pk}",
                           {"duration_minutes": "45", "justification": "patching"})
    assert response.status_code == 302
    req = AccessRequest.objects.get()
    assert req.mfa_method == "totp"
    age = (timezone.now() - req.mfa_verified_at).total_seconds()
    assert 290 <= age <= 400
    assert _event("request.created", req)["mfa_method"] == "totp"
    assert _event("request.created", req)["mfa_verified_at"] == req.mfa_verified_at.isoformat()


def test_portal_step_up_code_is_recorded_as_verified_now(world, verified_client):
    """GIVEN a stale session WHEN alice posts the request with a backup code THEN backup_code, verified now."""
    client = verified_client(world["alice"], age_seconds=stale_age())
    code = backup_codes(world["alice"], 1)[0]
    client.post(f"{reverse('elevation:request-new')}?target={world['srv'].pk}",
                {"duration_minutes": "45", "justification": "patching", "otp": code})
    req = AccessRequest.objects.get()
    assert req.mfa_method == "backup_code" and _recent(req.mfa_verified_at)


def test_portal_extension_records_the_step(world, verified_client):
    req = services.request_create(requester=world["alice"], target=world["srv"], duration_minutes=30)
    services.request_approve(request=req, approver=world["lead"])
    Grant.objects.filter(request=req).update(state=Grant.State.ACTIVE, claim_token=None, lease_until=None)
    grant = Grant.objects.get(request=req)
    client = verified_client(world["alice"])
    client.post(reverse("elevation:grant-extend", args=[grant.pk]), {"duration_minutes": "30", "justification": "more"})
    ext = AccessRequest.objects.get(kind=AccessRequest.Kind.EXTENSION)
    assert ext.mfa_method == "totp" and _recent(ext.mfa_verified_at)


# -- REST API -----------------------------------------------------------------------------------
def _api(u):
    _, raw = api_token_create(user=u, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_api_records_the_otp_checked_on_each_write(world):
    """GIVEN a token caller WHEN a request is created with a TOTP code and approved with a backup code
    THEN the request records totp, the approval backup_code, both verified at the call."""
    alice, lead = world["alice"], world["lead"]
    code = totp_code(totp_device(alice))
    created = _api(alice).post("/api/v1/requests", {"target": "SRV01", "otp": code}, format="json")
    assert created.status_code == 201, created.json()
    req = AccessRequest.objects.get()
    assert req.mfa_method == "totp" and _recent(req.mfa_verified_at)

    approved = _api(lead).post(f"/api/v1/requests/{req.pk}/approve", {"otp": backup_codes(lead, 1)[0]}, format="json")
    assert approved.status_code == 200, approved.json()
    approval = Approval.objects.get(request=req)
    assert approval.mfa_method == "backup_code" and _recent(approval.mfa_verified_at)
    assert _event("request.approval_recorded", req)["mfa_method"] == "backup_code"
    assert _event("request.approved", req)["mfa_method"] == "backup_code"


def test_api_deny_records_the_step(world):
    req = services.request_create(requester=world["alice"], target=world["srv"])
    lead = world["lead"]
    denied = _api(lead).post(f"/api/v1/requests/{req.pk}/deny", {"otp": backup_codes(lead, 1)[0], "comment": "no"},
                             format="json")
    assert denied.status_code == 200, denied.json()
    assert Approval.objects.get(request=req).mfa_method == "backup_code"
    assert _event("request.denied", req)["mfa_method"] == "backup_code"


# -- admin --------------------------------------------------------------------------------------
def test_admin_approve_records_the_approver_s_step_and_shows_it(world, verified_client):
    req = services.request_create(requester=world["alice"], target=world["srv"], justification="patching",
                                  mfa=MfaStep("webauthn", timezone.now()))
    client = verified_client(world["lead"])
    page = client.get(f"{QUEUE}{req.pk}/change/").content.decode()
    assert "webauthn, verified" in page
    client.post(f"{QUEUE}{req.pk}/decide/", {"decision": "approve", "comment": ""})
    approval = Approval.objects.get(request=req)
    assert approval.mfa_method == "totp" and _recent(approval.mfa_verified_at)


def test_admin_deny_records_the_step_and_a_request_without_one_is_flagged(world, verified_client):
    req = services.request_create(requester=world["alice"], target=world["srv"], justification="patching")
    client = verified_client(world["lead"])
    assert "no verified MFA step recorded" in client.get(f"{QUEUE}{req.pk}/change/").content.decode()
    client.post(f"{QUEUE}{req.pk}/decide/", {"decision": "deny", "comment": "wrong server"})
    assert Approval.objects.get(request=req).mfa_method == "totp"


# -- services -----------------------------------------------------------------------------------
def test_auto_approval_carries_the_request_s_own_step(world):
    dev = target("DEV01")
    policy(dev, name="dev", approval_mode=Policy.ApprovalMode.AUTO)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt_timezone.utc)
    req = services.request_create(requester=world["alice"], target=dev, mfa=MfaStep("totp", at))
    assert (req.state, req.mfa_method, req.mfa_verified_at) == (AccessRequest.State.APPROVED, "totp", at)
    assert _event("request.approved", req)["mfa_verified_at"] == at.isoformat()


def test_callers_without_a_step_record_none(world):
    req = services.request_create(requester=world["alice"], target=world["srv"])
    assert (req.mfa_method, req.mfa_verified_at) == ("", None)
    assert _event("request.created", req)["mfa_method"] == ""
    assert timedelta(0) <= timezone.now() - req.created_at
