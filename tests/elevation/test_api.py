"""REST API v1 over the database: tokens, the ``otp`` rule, visibility, decisions and errors.

Manual-approval policies only, so no DC or worker is needed: an approval creates a grant
and queues its task with ``transaction.on_commit``, and under the ``db`` fixture nothing
commits, so the grant stays as the service left it.
"""
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from jitad.accounts.models import ApiToken
from jitad.accounts.services import api_token_create, api_token_revoke
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Approval, Grant, Policy, Target
from jitad.elevation.selectors.approvers import can_decide
from jitad.elevation.selectors.eligibility import eligibility_search, eligible_targets
from jitad.elevation.selectors.requests import requests_visible_to
from tests.support.mfa import backup_codes, totp_code, totp_device
from .builders import policy, target, user

pytestmark = pytest.mark.usefixtures("db")

RequestState = AccessRequest.State
REQUESTS = "/api/v1/requests"


# -- builders ----------------------------------------------------------------------------





def issue_token(u: User) -> tuple[ApiToken, str]:
    return api_token_create(user=u, name="tests")


class Codes:
    """A user's real backup codes, added one at a time as the test uses them: each costs a slow hash
    (scrypt) to store and, at every POST, to check, so a stock of thirty per caller cost seconds a test."""

    def __init__(self, u: User):
        self.user = u
        self.left = backup_codes(u, 1)  # the device and one unused code exist from the start, as before

    def pop(self) -> str:
        if not self.left:
            self.left = backup_codes(self.user, 1)
        return self.left.pop()


class Caller:
    """An API client for one user: a real token, and backup codes for the ``otp`` of each POST."""

    def __init__(self, u: User):
        self.user = u
        self.token, raw = issue_token(u)
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        self.codes = Codes(u)

    def get(self, path: str, params=None):
        return self.client.get(path, params or {})

    def post(self, path: str, data=None, *, otp=True):
        body = dict(data or {})
        if otp is True:
            body["otp"] = self.codes.pop()
        elif otp:
            body["otp"] = otp
        return self.client.post(path, body, format="json")

    def create(self, target_ref="SRV01", **data):
        response = self.post(REQUESTS, {"target": target_ref, **data})
        assert response.status_code == 201, response.json()
        return response.json()


def error(response, status: int, code: str) -> dict:
    """Assert ``response`` is a JSON error with this status and code; return its body."""
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert (response.status_code, body.get("code")) == (status, code), body
    assert body["detail"]
    return body


@pytest.fixture
def world():
    """SRV01 under ops-servers (Ops may request, Leads approve, one approval needed)."""
    t = target("SRV01", hostname="srv01.jitad.test", description="file server")
    p = policy(t)
    return {
        "target": t,
        "policy": p,
        "alice": Caller(user("alice", "Ops")),
        "dave": Caller(user("dave", "Ops")),
        "bob": Caller(user("bob", "leads")),  # case differs from the policy's "Leads" on purpose
        "carol": Caller(user("carol", "Leads")),
        "eve": Caller(user("eve")),
    }


def pending_request(who: Caller, **fields) -> AccessRequest:
    return services.request_create(requester=who.user, target=Target.objects.get(name="SRV01"), **fields)


def approved_request(who: Caller, approver: Caller) -> AccessRequest:
    req = pending_request(who)
    services.request_approve(request=req, approver=approver.user)
    req.refresh_from_db()
    return req


def snapshot():
    """Everything a state-changing call could change."""
    return (
        sorted(AccessRequest.objects.values_list("id", "state")),
        sorted(Approval.objects.values_list("id", "decision")),
        sorted(Grant.objects.values_list("id", "state", "revoke_requested_at", "expires_at")),
    )


# -- authentication ----------------------------------------------------------------------
def test_token_missing_invalid_revoked_or_expired_is_401_json(world):
    alice = world["alice"]
    assert alice.get(REQUESTS).status_code == 200

    anonymous = APIClient()
    r = anonymous.get(REQUESTS)
    error(r, 401, "not_authenticated")
    assert r["WWW-Authenticate"].startswith("Bearer")

    for header in ("Bearer jitad_deadbeef_notarealtoken", "Bearer nonsense", "Bearer two parts", "Token "):
        anonymous.credentials(HTTP_AUTHORIZATION=header)
        body = anonymous.get(REQUESTS).json()
        assert body["code"] in ("authentication_failed", "not_authenticated"), (header, body)
        assert anonymous.get(REQUESTS).status_code == 401

    ApiToken.objects.filter(pk=alice.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    error(alice.get(REQUESTS), 401, "authentication_failed")

    dave = world["dave"]
    api_token_revoke(token=dave.token, actor=dave.user)
    error(dave.get(REQUESTS), 401, "authentication_failed")
    error(dave.post(REQUESTS, {"target": "SRV01"}), 401, "authentication_failed")
    assert not AccessRequest.objects.exists()


def test_every_issued_token_authenticates():
    """Secrets from token_urlsafe may contain '_', the token's own separator."""
    u = user("tina")
    client = APIClient()
    for _ in range(40):  # P(no '_' in 40 secrets) is about 1e-12
        _, raw = api_token_create(user=u, name="t")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert client.get(REQUESTS).status_code == 200, raw


def test_reads_need_no_otp(world):
    alice = world["alice"]
    req = pending_request(alice)
    assert alice.get("/api/v1/eligibility").status_code == 200
    assert alice.get(REQUESTS).json()["count"] == 1
    assert alice.get(f"{REQUESTS}/{req.pk}").json()["id"] == req.pk


# -- the otp rule, on every state-changing endpoint --------------------------------------
def _setup_create(w):
    return w["alice"], REQUESTS, {"target": "SRV01"}, 201


def _setup_approve(w):
    return w["bob"], f"{REQUESTS}/{pending_request(w['alice']).pk}/approve", {"comment": "ok"}, 200


def _setup_deny(w):
    return w["bob"], f"{REQUESTS}/{pending_request(w['alice']).pk}/deny", {"comment": "not today"}, 200


def _setup_cancel(w):
    return w["alice"], f"{REQUESTS}/{pending_request(w['alice']).pk}/cancel", {}, 200


def _setup_release(w):
    return w["alice"], f"{REQUESTS}/{approved_request(w['alice'], w['bob']).pk}/release", {}, 200


def _setup_extend(w):
    return w["alice"], f"{REQUESTS}/{approved_request(w['alice'], w['bob']).pk}/extend", {"duration_minutes": 30}, 201


@pytest.mark.parametrize(
    "setup", [_setup_create, _setup_approve, _setup_deny, _setup_cancel, _setup_release, _setup_extend],
    ids=lambda f: f.__name__.removeprefix("_setup_"),
)
def test_every_state_changing_call_needs_a_valid_otp(world, setup):
    """GIVEN a call that would succeed WHEN it has no otp, or a wrong one THEN 403 and nothing changed;
    WHEN it carries a backup code THEN it succeeds."""
    caller, path, data, success = setup(world)
    before = snapshot()

    error(caller.post(path, data, otp=False), 403, "otp_required")
    error(caller.post(path, {**data, "otp": ""}, otp=False), 403, "otp_required")
    right = totp_code(totp_device(caller.user))
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    error(caller.post(path, data, otp=wrong), 403, "otp_invalid")
    error(caller.post(path, data, otp="not a code!"), 403, "otp_invalid")
    assert snapshot() == before

    r = caller.post(path, data)
    assert r.status_code == success, r.json()
    assert snapshot() != before


def test_a_backup_code_is_single_use(world):
    alice = world["alice"]
    code = alice.codes.pop()
    assert alice.post(REQUESTS, {"target": "SRV01"}, otp=code).status_code == 201
    error(alice.post(REQUESTS, {"target": "SRV01"}, otp=code), 403, "otp_invalid")
    assert AccessRequest.objects.count() == 1


# -- creating ----------------------------------------------------------------------------
def test_create_returns_the_request(world):
    alice, t = world["alice"], world["target"]
    body = alice.create(t.pk, duration_minutes=90, justification="patch Tuesday", ticket="CHG-1")
    req = AccessRequest.objects.get()
    assert body["id"] == req.pk
    assert body["kind"] == "new" and body["state"] == "pending"
    assert body["target"] == {"id": t.pk, "name": "SRV01", "hostname": "srv01.jitad.test"}
    assert body["requester"] == "alice" and body["policy"] == "ops-servers"
    assert (body["duration_minutes"], body["justification"], body["ticket"]) == (90, "patch Tuesday", "CHG-1")
    assert body["approvals_required"] == 1 and body["approvals"] == 0
    assert body["grant"] is None and body["extends"] is None and body["decided_at"] is None
    assert body["created_at"] and body["pending_until"]
    assert "otp" not in body

    by_name = alice.create("SRV01")
    assert by_name["duration_minutes"] == 60  # the policy's default
    by_digits = alice.create(str(t.pk))
    assert by_digits["target"]["id"] == t.pk


def test_a_name_wins_over_an_id(world):
    """A target literally named like another's id is found by its name."""
    other = target(str(world["target"].pk + 100))
    policy(other, name="numeric")
    assert world["alice"].create(other.name)["target"]["id"] == other.pk


def test_over_the_policy_maximum_is_refused_and_nothing_created(world):
    body = error(world["alice"].post(REQUESTS, {"target": "SRV01", "duration_minutes": 241}), 400, "duration_too_long")
    assert "allows at most 240 minutes" in body["detail"]
    error(world["alice"].post(REQUESTS, {"target": "SRV01", "duration_minutes": 10**30}), 400, "duration_too_long")
    assert not AccessRequest.objects.exists()


def test_not_eligible_unknown_or_disabled_target(world):
    error(world["eve"].post(REQUESTS, {"target": "SRV01"}), 403, "not_eligible")
    error(world["alice"].post(REQUESTS, {"target": "NOPE"}), 400, "target_unknown")
    error(world["alice"].post(REQUESTS, {"target": 987654}), 400, "target_unknown")
    target("SRV02", enabled=False)
    error(world["alice"].post(REQUESTS, {"target": "SRV02"}), 400, "target_disabled")
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize(
    "data, code",
    [
        ({"target": "SRV01", "duration_minutes": "abc"}, "invalid"),
        ({"target": "SRV01", "duration_minutes": 1.5}, "invalid"),
        ({"target": "SRV01", "duration_minutes": [60]}, "invalid"),
        ({"target": "SRV01", "duration_minutes": -5}, "duration_invalid"),
        ({"target": "SRV01", "duration_minutes": 0}, "duration_invalid"),
        ({"target": "SRV01", "justification": {"why": 1}}, "invalid"),
        ({"target": "SRV01", "justification": "x" * 100_000}, "invalid"),
        ({"target": "SRV01", "justification": "x" * 5_000}, "justification_too_long"),
        ({"target": "SRV01", "ticket": "T" * 65}, "ticket_invalid"),
        ({"target": "SRV01", "ticket": "T" * 100_000}, "invalid"),
        ({"target": ["SRV01"]}, "invalid"),
        ({"target": True}, "invalid"),
        ({"target": ""}, "invalid"),
        ({"target": None}, "invalid"),
        ({"target": "S" * 10_000}, "invalid"),
        ({"target": 10**30}, "target_unknown"),
        ({"target": -1}, "target_unknown"),
        ({"target": "9" * 40}, "target_unknown"),
        ({}, "invalid"),
    ],
)
def test_bad_input_is_400_json_never_500(world, data, code):
    error(world["alice"].post(REQUESTS, data), 400, code)
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize(
    "raw, status, code",
    [
        ('{"target": "SRV01", "otp": ', 400, "parse_error"),
        ('{"target": NaN}', 400, "parse_error"),
        ("\xff\xfe not utf-8", 400, "parse_error"),
        ("[1, 2]", 403, "otp_required"),
        ('"just a string"', 403, "otp_required"),
        ('{"target": "SRV01", "otp": ["a", "b"]}', 403, "otp_invalid"),
    ],
)
def test_malformed_bodies_are_4xx_json(world, raw, status, code):
    client = world["alice"].client
    r = client.generic("POST", REQUESTS, raw.encode("latin-1"), content_type="application/json")
    error(r, status, code)
    assert not AccessRequest.objects.exists()


def test_unsupported_media_type_and_method_are_json(world):
    client = world["alice"].client
    error(client.generic("POST", REQUESTS, b"<x/>", content_type="application/xml"), 415, "unsupported_media_type")
    error(client.delete(REQUESTS), 403, "otp_required")  # the otp rule comes first, for any unsafe method
    error(client.delete(REQUESTS, {"otp": world["alice"].codes.pop()}, format="json"), 405, "method_not_allowed")
    error(client.get(f"{REQUESTS}/1/approve"), 405, "method_not_allowed")


# -- visibility --------------------------------------------------------------------------
def test_other_peoples_requests_are_404(world):
    req = pending_request(world["alice"])
    dave = world["dave"]  # eligible too, but no approver
    error(dave.get(f"{REQUESTS}/{req.pk}"), 404, "not_found")
    before = snapshot()
    error(dave.post(f"{REQUESTS}/{req.pk}/approve"), 404, "not_found")
    error(dave.post(f"{REQUESTS}/{req.pk}/cancel"), 404, "not_found")
    assert snapshot() == before
    assert dave.get(REQUESTS).json()["count"] == 0
    for bad in ("abc", "1.5", "-1", "9" * 30, "%20"):
        error(dave.get(f"{REQUESTS}/{bad}"), 404, "not_found")
    error(dave.get("/api/v1/nowhere"), 404, "not_found")


def test_an_approver_sees_requests_they_may_decide(world):
    """GIVEN requests under two policies WHEN approvers of one list requests THEN they see exactly
    that policy's requests (group names matched without regard to case) plus their own."""
    alice, bob, dave = world["alice"], world["bob"], world["dave"]
    other = target("DB01")
    policy(other, name="dba", approver_groups=["DBA-Leads"])
    mine = pending_request(alice)
    theirs = services.request_create(requester=alice.user, target=other)

    listed = {r["id"] for r in bob.get(REQUESTS).json()["results"]}
    assert listed == {mine.pk}
    assert bob.get(f"{REQUESTS}/{mine.pk}").json()["requester"] == "alice"
    error(bob.get(f"{REQUESTS}/{theirs.pk}"), 404, "not_found")
    assert dave.get(REQUESTS).json()["count"] == 0
    assert {r["id"] for r in alice.get(REQUESTS).json()["results"]} == {mine.pk, theirs.pk}

    dba = Caller(user("dora", "dba-leads"))
    assert {r["id"] for r in dba.get(REQUESTS).json()["results"]} == {theirs.pk}


def test_visibility_and_eligibility_agree_with_the_policy_services(world):
    """The SQL matching in selectors.requests gives the same answers as policy_for / can_decide."""
    t2, t3 = target("SRV02"), target("SRV03")
    policy(t2, name="low", priority=10, eligible_groups=["OPS"], approver_groups=["x", "LEADS"])
    policy(t2, name="high", priority=50, eligible_users=["Eve"], eligible_groups=[], approver_groups=[])
    policy(t3, name="eve-only", eligible_groups=[], eligible_users=["EVE"], approver_groups=["leads"], enabled=False)
    for name in ("alice", "bob", "eve"):
        u = world[name].user
        page = eligibility_search(user=u, limit=100)
        assert [(t.name, p.name) for t, p in page.items] == sorted(
            (t.name, p.name) for t, p in eligible_targets(user=u)
        ), name
    reqs = [pending_request(world["alice"]), services.request_create(requester=world["alice"].user, target=t2)]
    for name in ("alice", "bob", "carol", "dave", "eve"):
        u = world[name].user
        expected = {r.pk for r in reqs if r.requester_id == u.pk or can_decide(user=u, request=r)}
        assert set(requests_visible_to(user=u).values_list("id", flat=True)) == expected, name


def test_listing_costs_the_same_queries_for_few_or_many_requests(world):
    bob = world["bob"]
    for _ in range(2):
        pending_request(world["alice"])
    bob.get(REQUESTS)  # token's last_used_at is written at most once a minute
    with CaptureQueriesContext(connection) as few:
        assert bob.get(REQUESTS).json()["count"] == 2
    for _ in range(8):
        approved_request(world["dave"], world["carol"])
    with CaptureQueriesContext(connection) as many:
        assert bob.get(REQUESTS).json()["count"] == 10
    assert len(many) == len(few)


def test_the_list_shows_each_request_as_its_own_page_does_with_a_fixed_number_of_queries(world):
    """GIVEN plain, approved, staged and extension requests WHEN an approver lists them THEN every row is what
    the request's own endpoint (reading whole rows) shows, the grant an extension extends and each stage's
    approvals included; and the list costs the same queries for a few such rows as for many."""
    alice, bob, carol = world["alice"], world["bob"], world["carol"]

    def add_each_kind():
        pending_request(alice)
        grant = approved_request(alice, carol).grant
        services.request_extend(grant=grant, requester=alice.user, duration_minutes=30, justification="overran")
        staged = pending_request(world["dave"])
        AccessRequest.objects.filter(pk=staged.pk).update(stage=1, stages=[
            {"name": "peer", "approvals_required": 1, "approver_groups": ["Leads"], "distinct_groups": False},
            {"name": "owner", "approvals_required": 2, "approver_groups": ["Leads"], "distinct_groups": False}])
        Approval.objects.create(request=staged, approver=carol.user, decision=Approval.Decision.APPROVE, stage=1,
                                approver_groups=["Leads"])

    add_each_kind()
    bob.get(REQUESTS)  # token's last_used_at is written at most once a minute
    with CaptureQueriesContext(connection) as few:
        listed = bob.get(REQUESTS).json()["results"]
    assert {r["kind"] for r in listed} == {"new", "extension"} and any(r["stages"] for r in listed)
    assert any(r["kind"] == "extension" and r["grant"] for r in listed)
    for row in listed:
        assert row == bob.get(f"{REQUESTS}/{row['id']}").json()
    for _ in range(3):
        add_each_kind()
    with CaptureQueriesContext(connection) as many:
        assert bob.get(REQUESTS).json()["count"] == 16
    assert len(many) == len(few)


# -- decisions ---------------------------------------------------------------------------
def test_self_approval_is_refused(world):
    frank = Caller(user("frank", "Ops", "Leads"))
    req = pending_request(frank)
    error(frank.post(f"{REQUESTS}/{req.pk}/approve", {"comment": "me"}), 403, "self_approval")
    error(frank.post(f"{REQUESTS}/{req.pk}/deny", {"comment": "me"}), 403, "self_approval")
    req.refresh_from_db()
    assert req.state == RequestState.PENDING and not req.approvals.exists()


def test_two_of_n_needs_two_distinct_approvers(world):
    world["policy"].approvals_required = 2
    world["policy"].save()
    alice, bob, carol = world["alice"], world["bob"], world["carol"]
    req_id = alice.create()["id"]
    path = f"{REQUESTS}/{req_id}/approve"

    first = bob.post(path, {"comment": "fine"})
    assert first.status_code == 200
    assert (first.json()["state"], first.json()["approvals"], first.json()["grant"]) == ("pending", 1, None)
    error(bob.post(path), 409, "already_decided")
    assert alice.get(f"{REQUESTS}/{req_id}").json()["state"] == "pending"

    second = carol.post(path)
    assert second.status_code == 200
    body = second.json()
    assert (body["state"], body["approvals"], body["approvals_required"]) == ("approved", 2, 2)
    assert body["decided_at"]
    grant = Grant.objects.get(request_id=req_id)
    assert body["grant"]["id"] == grant.pk and body["grant"]["state"] == grant.state
    error(Caller(user("lena", "LEADS")).post(path), 409, "not_pending")


def test_deny_needs_a_comment(world):
    req = pending_request(world["alice"])
    bob = world["bob"]
    path = f"{REQUESTS}/{req.pk}/deny"
    error(bob.post(path), 400, "comment_required")
    error(bob.post(path, {"comment": "   "}), 400, "comment_required")
    error(bob.post(path, {"comment": None}), 400, "comment_required")
    req.refresh_from_db()
    assert req.state == RequestState.PENDING
    r = bob.post(path, {"comment": "use the staging box"})
    assert r.status_code == 200 and r.json()["state"] == "denied"
    assert Approval.objects.get(request=req).comment == "use the staging box"
    error(world["carol"].post(f"{REQUESTS}/{req.pk}/approve"), 409, "not_pending")


def test_cancel(world):
    req = pending_request(world["alice"])
    error(world["bob"].post(f"{REQUESTS}/{req.pk}/cancel"), 403, "not_requester")
    r = world["alice"].post(f"{REQUESTS}/{req.pk}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    error(world["alice"].post(f"{REQUESTS}/{req.pk}/cancel"), 409, "not_pending")


def test_extend_and_release(world):
    alice, bob = world["alice"], world["bob"]
    pending = pending_request(alice)
    error(alice.post(f"{REQUESTS}/{pending.pk}/extend", {"duration_minutes": 30}), 409, "no_grant")
    error(alice.post(f"{REQUESTS}/{pending.pk}/release"), 409, "no_grant")

    req = approved_request(alice, bob)
    grant = req.grant
    error(alice.post(f"{REQUESTS}/{req.pk}/extend", {"duration_minutes": 999}), 400, "duration_too_long")
    error(bob.post(f"{REQUESTS}/{req.pk}/extend", {"duration_minutes": 30}), 403, "not_requester")
    r = alice.post(f"{REQUESTS}/{req.pk}/extend", {"duration_minutes": 30, "justification": "still patching"})
    assert r.status_code == 201, r.json()
    ext = r.json()
    assert (ext["kind"], ext["state"], ext["extends"]) == ("extension", "pending", grant.pk)
    assert ext["duration_minutes"] == 30
    assert ext["grant"]["id"] == grant.pk and ext["id"] != req.pk
    error(alice.post(f"{REQUESTS}/{req.pk}/extend", {"duration_minutes": 30}), 409, "extension_pending")

    error(bob.post(f"{REQUESTS}/{req.pk}/release"), 403, "not_holder")
    r = alice.post(f"{REQUESTS}/{req.pk}/release")
    assert r.status_code == 200
    assert r.json()["grant"]["revoke_requested_at"]
    grant.refresh_from_db()
    assert grant.revoke_reason == Grant.RevokeReason.RELEASED and grant.revoke_requested_by == "alice"
    error(alice.post(f"{REQUESTS}/{ext['id']}/release"), 409, "already_revoked")


def test_durations_as_people_write_them(world):
    """GIVEN the API WHEN alice asks with duration "1h30m" (or "PT2H", or duration_minutes as
    before) THEN the request records the minutes; an unreadable duration, or both fields,
    is a 400 with a code, and nothing is created."""
    alice, bob = world["alice"], world["bob"]
    assert alice.create(duration="1h30m")["duration_minutes"] == 90
    assert alice.create(duration="PT2H")["duration_minutes"] == 120
    assert alice.create(duration_minutes=45)["duration_minutes"] == 45
    before = AccessRequest.objects.count()
    body = error(alice.post(REQUESTS, {"target": "SRV01", "duration": "1h30"}), 400, "duration_invalid")
    assert "such as 4h, 90m or 1h30m" in body["detail"]
    body = error(alice.post(REQUESTS, {"target": "SRV01", "duration": "5h"}), 400, "duration_too_long")
    assert "at most 240 minutes (4 h)" in body["detail"]
    body = error(alice.post(REQUESTS, {"target": "SRV01", "duration": "1h", "duration_minutes": 60}), 400, "invalid")
    assert "not both" in body["fields"]["duration"][0]
    assert AccessRequest.objects.count() == before

    req = approved_request(alice, bob)
    r = alice.post(f"{REQUESTS}/{req.pk}/extend", {"duration": "1h", "justification": "still patching"})
    assert r.status_code == 201 and r.json()["duration_minutes"] == 60


def test_extending_past_what_the_policy_allows_is_a_clear_refusal(world):
    """GIVEN a policy with no extensions, then one whose longest grant is already reached
    WHEN alice forces an extension through the API THEN 409 with a code that says which."""
    alice, bob = world["alice"], world["bob"]
    Policy.objects.filter(pk=world["policy"].pk).update(max_extensions=0)
    req = approved_request(alice, bob)
    body = error(alice.post(f"{REQUESTS}/{req.pk}/extend", {"duration": "30m"}), 409, "too_many_extensions")
    assert "allows no extensions" in body["detail"]

    Policy.objects.filter(pk=world["policy"].pk).update(max_extensions=2, max_duration_minutes=60)
    body = error(alice.post(f"{REQUESTS}/{req.pk}/extend", {"duration": "30m"}), 409, "total_duration_reached")
    assert "at most 1 h in all" in body["detail"]
    Policy.objects.filter(pk=world["policy"].pk).update(max_duration_minutes=90)
    body = error(alice.post(f"{REQUESTS}/{req.pk}/extend", {"duration": "31m"}), 400, "extension_too_long")
    assert "at most 30 min more" in body["detail"]
    assert not AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION).exists()


# -- listing -----------------------------------------------------------------------------
def test_state_filter_pagination_and_bad_state(world):
    alice = world["alice"]
    keep = pending_request(alice)
    gone = pending_request(alice)
    services.request_cancel(request=gone, actor=alice.user)

    assert [r["id"] for r in alice.get(REQUESTS, {"state": "pending"}).json()["results"]] == [keep.pk]
    assert [r["id"] for r in alice.get(REQUESTS, {"state": "cancelled"}).json()["results"]] == [gone.pk]
    assert alice.get(REQUESTS, {"state": "approved"}).json()["count"] == 0
    error(alice.get(REQUESTS, {"state": "bogus"}), 400, "state_invalid")
    error(alice.get(REQUESTS, {"state": ""}), 400, "state_invalid")

    page = alice.get(REQUESTS, {"limit": 1}).json()
    assert page["count"] == 2 and [r["id"] for r in page["results"]] == [gone.pk] and page["next"]
    for params in ({"offset": 10**40}, {"limit": 10**40}, {"limit": "x", "offset": "-3"}):
        assert alice.get(REQUESTS, params).status_code == 200, params


def test_paths_work_with_and_without_a_trailing_slash(world):
    alice = world["alice"]
    req = pending_request(alice)
    for path in (REQUESTS, f"{REQUESTS}/", "/api/v1/eligibility/", f"{REQUESTS}/{req.pk}/"):
        assert alice.get(path).status_code == 200, path
    assert alice.post(f"{REQUESTS}/", {"target": "SRV01"}).status_code == 201
    assert alice.post(f"{REQUESTS}/{req.pk}/cancel/").json()["state"] == "cancelled"


# -- eligibility -------------------------------------------------------------------------
def test_eligibility_lists_what_i_may_request(world):
    t2 = target("SRV02", kind=Target.Kind.DOMAIN_ROLE)
    policy(t2, name="tickets", require_ticket=True, ticket_pattern=r"CHG-\d+", require_justification=True,
           min_justification_length=20, approvals_required=2, max_extensions=1)
    policy(t2, name="shadowed", priority=500)
    target("SRV03", enabled=False)
    policy(Target.objects.get(name="SRV03"), name="off")

    body = world["alice"].get("/api/v1/eligibility").json()
    assert body["count"] == 2
    rows = body["results"]
    assert [r["name"] for r in rows] == ["SRV01", "SRV02"]
    assert rows[0] == {
        "id": world["target"].pk, "name": "SRV01", "kind": "server", "hostname": "srv01.jitad.test",
        "description": "file server", "policy": "ops-servers", "default_duration_minutes": 60,
        "max_duration_minutes": 240, "approval_mode": "manual", "approvals_required": 1,
        "require_justification": False, "min_justification_length": 10, "require_ticket": False,
        "ticket_pattern": "", "max_extensions": 2,
    }
    assert rows[1]["policy"] == "tickets" and rows[1]["kind"] == "domain_role"
    assert (rows[1]["require_ticket"], rows[1]["ticket_pattern"]) == (True, r"CHG-\d+")
    assert rows[1]["approvals_required"] == 2
    assert world["eve"].get("/api/v1/eligibility").json()["results"] == []
    page = world["alice"].get("/api/v1/eligibility", {"limit": 1, "offset": 1}).json()
    assert page["count"] == 2 and [r["name"] for r in page["results"]] == ["SRV02"]
    assert [r["name"] for r in world["alice"].get("/api/v1/eligibility", {"q": "file"}).json()["results"]] == ["SRV01"]

    with CaptureQueriesContext(connection) as few:  # what each row shows is read with the page, not row by row
        world["alice"].get("/api/v1/eligibility")
    world["policy"].targets.add(*(target(f"SRV1{i}", description="more") for i in range(5)))
    with CaptureQueriesContext(connection) as many:
        assert world["alice"].get("/api/v1/eligibility").json()["count"] == 7
    assert len(many) == len(few)


def test_auto_policy_reports_no_approvals(world):
    world["policy"].approval_mode = Policy.ApprovalMode.AUTO
    world["policy"].save()
    assert world["alice"].get("/api/v1/eligibility").json()["results"][0]["approvals_required"] == 0


# -- schema and browsable API ------------------------------------------------------------
def test_schema_is_valid_openapi_with_otp_on_every_post(world):
    from drf_spectacular.validation import validate_schema

    r = world["alice"].get("/api/schema/", {"format": "json"})
    assert r.status_code == 200
    schema = r.json()
    validate_schema(schema)
    components = schema["components"]["schemas"]

    def body_schema(op):
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return components[ref.rsplit("/", 1)[1]]

    create = body_schema(schema["paths"]["/api/v1/requests"]["post"])
    assert "otp" in create["properties"] and "mfa_step" in create["properties"]
    # The passkey step's own calls are how a person without a code gets one: they need neither.
    posts = [(path, ops["post"]) for path, ops in schema["paths"].items()
             if "post" in ops and not path.startswith("/api/v1/mfa/")]
    actions = ("approve", "deny", "cancel", "release", "extend")
    assert {p for p, _ in posts} >= {f"/api/v1/requests/{{id}}/{a}" for a in actions}
    for path, op in posts:  # one of the two is needed, which the permission class checks
        assert {"otp", "mfa_step"} <= set(body_schema(op)["properties"]), path
    assert "comment" in body_schema(schema["paths"]["/api/v1/requests/{id}/deny"]["post"])["required"]


def test_every_operation_documents_400_which_a_nul_in_the_query_gets(world):
    """Found by the schema fuzz (test_api_fuzz.py): any call whose query holds a NUL byte is
    refused 400 before a view runs, so every operation's schema must list 400."""
    schema = world["alice"].get("/api/schema/", {"format": "json"}).json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            assert "400" in op["responses"], (method, path)
    req = pending_request(world["alice"])
    for path in ("/api/v1/eligibility", REQUESTS, f"{REQUESTS}/{req.pk}"):
        error(world["alice"].get(path, {"q": "a\x00b"}), 400, "invalid")


def test_docs_page_and_browsable_api(world, verified_client):
    session = verified_client(world["alice"].user)
    docs = session.get(reverse("api-docs"))
    assert docs.status_code == 200 and b'id="swagger-ui"' in docs.content
    # Swagger UI's start-up script is a file of its own (no inline script for the CSP to allow).
    script = session.get(reverse("api-docs"), {"script": ""})
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert reverse("api-schema").encode() in script.content
    req = pending_request(world["alice"])
    r = session.get(REQUESTS, HTTP_ACCEPT="text/html")
    assert r.status_code == 200 and b"SRV01" in r.content
    for path in ("/api/v1/eligibility", f"{REQUESTS}/{req.pk}"):
        assert session.get(path, HTTP_ACCEPT="text/html").status_code == 200, path
    assert session.get(f"{REQUESTS}/{req.pk}/approve", HTTP_ACCEPT="text/html").status_code == 405
    error(session.post(REQUESTS, {"target": "SRV01"}, content_type="application/json"), 403, "otp_required")


def test_a_token_with_an_html_accept_header_is_not_a_500(world):
    """The browsable renderer runs the portal's context processors for a token-authenticated user."""
    alice = world["alice"]
    response = alice.client.get(REQUESTS, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_nul_in_a_target_is_a_400_not_a_database_error(world):
    response = world["alice"].post(REQUESTS, {"target": "SRV\x0001", "duration_minutes": 30})
    assert response.status_code == 400 and response.json()["code"] == "invalid"


@pytest.mark.parametrize(
    "raw, status, code",
    [
        ("[" * 50_000 + "]" * 50_000, 400, "too_deep"),
        ('{"target": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001, 400, "too_deep"),
        ("[" * 50_000, 400, "too_deep"),  # unterminated too: the depth is refused before the parse error
        ('{"target": "' + "x" * (2 * 1024 * 1024) + '"}', 413, "too_large"),
        ('{"target": "' + '\\"[' * 100_000, 400, "parse_error"),  # escaped quotes, unterminated: scanned in linear time
    ],
)
def test_too_deep_or_too_big_json_is_4xx_json(world, raw, status, code):
    """GIVEN a body nested 50,000 levels deep (json recurses per level) or over the size limit
    WHEN it is posted to the API THEN the answer is the API's JSON error, not a RecursionError's 500."""
    r = world["alice"].client.generic("POST", REQUESTS, raw.encode(), content_type="application/json")
    body = error(r, status, code)
    limits = {"too_deep": settings.JITAD_JSON_MAX_DEPTH, "too_large": settings.JITAD_MAX_BODY_BYTES}
    assert str(limits.get(code, "")) in body["detail"]
    assert not AccessRequest.objects.exists()


def test_brackets_inside_strings_do_not_count_and_the_limit_is_inclusive(world):
    alice = world["alice"]
    deep = "[" * settings.JITAD_JSON_MAX_DEPTH + "]" * settings.JITAD_JSON_MAX_DEPTH
    r = alice.client.generic("POST", REQUESTS, ('{"target": "' + "[{" * 10_000 + '", "x": ' + deep[1:-1] + "}").encode(),
                             content_type="application/json")
    error(r, 403, "otp_required")  # parsed: the otp rule answers, not the limits
    too_deep = "[" * (settings.JITAD_JSON_MAX_DEPTH + 1) + "]" * (settings.JITAD_JSON_MAX_DEPTH + 1)
    error(alice.client.generic("POST", REQUESTS, too_deep.encode(), content_type="application/json"), 400, "too_deep")


def test_too_big_form_body_is_413_json(world):
    r = world["alice"].client.generic("POST", REQUESTS, b"target=" + b"x" * (2 * 1024 * 1024),
                                      content_type="application/x-www-form-urlencoded")
    error(r, 413, "too_large")
