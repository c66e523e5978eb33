"""The REST API end to end: a token and OTP codes, a real Samba DC and a real Celery worker."""
from rest_framework.test import APIClient

from jitad.accounts.services import api_token_create
from jitad.elevation.models import Grant
from tests.support.mfa import backup_codes
from tests.support.waiting import wait_for

from .helpers import ad_is_member, ad_user_dn


def _token(user) -> str:
    return api_token_create(user=user, name="e2e")[1]


def _grant_in(client: APIClient, request_id: int, state: str) -> dict:
    def poll():
        body = client.get(f"/api/v1/requests/{request_id}").json()
        return body if body["grant"] and body["grant"]["state"] == state else None

    return wait_for(poll, timeout=30, message=f"request {request_id}'s grant to be {state}")


def test_api_request_grant_and_release(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN an auto-approve policy WHEN a user asks through the API THEN the worker puts them
    in the AD group; WHEN they release through the API THEN the membership is removed."""
    target = make_target()
    alice = make_user("alice", groups=("admins",))
    codes = backup_codes(alice, 3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_token(alice)}")

    body = {"target": target.name, "duration_minutes": 30, "otp": codes.pop()}
    r = client.post("/api/v1/requests", body, format="json")
    assert r.status_code == 201, r.json()
    created = r.json()
    assert (created["state"], created["approvals_required"]) == ("approved", 0)

    active = _grant_in(client, created["id"], "active")
    assert active["grant"]["activated_at"]
    user_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username)
    assert ad_is_member(ldap_admin, target.group_dn, user_dn)

    r = client.post(f"/api/v1/requests/{created['id']}/release", {"otp": codes.pop()}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["grant"]["revoke_requested_at"]

    revoked = _grant_in(client, created["id"], "revoked")
    assert revoked["grant"]["revoked_at"]
    grant = Grant.objects.get(pk=active["grant"]["id"])
    assert grant.revoke_reason == Grant.RevokeReason.RELEASED and grant.membership_removed is True
    assert not ad_is_member(ldap_admin, target.group_dn, user_dn)
