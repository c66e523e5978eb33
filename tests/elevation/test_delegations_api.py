"""Deputies over the REST API (real tokens, real backup codes for ``otp``), and end to end on the real parts:
a deputy's approval puts the requester in the AD group; once the delegation lapses or is revoked,
the same approval is refused with a clear code."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, Approval, Delegation, Grant
from jitad.elevation.services.delegations import delegation_create, delegation_revoke
from jitad.notifications.models import Notification

from .builders import policy, target, user
from .helpers import ad_is_member, ad_user_dn, wait_state
from .test_api import Caller, error

URL = "/api/v1/delegations"


def later(days: float) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


@pytest.fixture
def w(db):
    """SRV01 under ops-servers: Ops request, Leads approve. bob is a lead; carol and dave are not."""
    policy(target("SRV01"))
    return {"alice": Caller(user("alice", "Ops")), "bob": Caller(user("bob", "Leads")),
            "carol": Caller(user("carol", "Ops")), "dave": Caller(user("dave"))}


def test_create_needs_a_valid_otp_and_records_the_step(w):
    bob = w["bob"]
    error(bob.post(URL, {"deputy": "carol", "ends_at": later(3)}, otp=False), 403, "otp_required")
    error(bob.post(URL, {"deputy": "carol", "ends_at": later(3)}, otp="000000"), 403, "otp_invalid")
    assert not Delegation.objects.exists()
    response = bob.post(URL, {"deputy": "carol", "ends_at": later(3), "reason": "holiday"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["delegator"], body["deputy"], body["state"], body["reason"]) == ("bob", "carol", "running", "holiday")
    d = Delegation.objects.get(pk=body["id"])
    assert d.mfa_method == "backup_code" and d.mfa_verified_at is not None
    assert AuditEvent.objects.get(action="delegation.created").data["mfa_method"] == "backup_code"


def test_list_shows_given_and_received_to_their_people_only(w):
    d = delegation_create(delegator=w["bob"].user, deputy=w["carol"].user, ends_at=timezone.now() + timedelta(days=2))
    mine = w["bob"].get(URL).json()
    assert [x["id"] for x in mine["given"]] == [d.pk] and mine["received"] == []
    theirs = w["carol"].get(URL).json()
    assert theirs["given"] == [] and [(x["id"], x["delegator"]) for x in theirs["received"]] == [(d.pk, "bob")]
    for other in ("alice", "dave"):  # a requester never learns who delegated to whom
        assert w[other].get(URL).json() == {"given": [], "received": []}


@pytest.mark.parametrize("data, status, code", [
    ({"deputy": "carol"}, 400, "invalid"),
    ({"deputy": "carol", "ends_at": "soon"}, 400, "invalid"),
    ({"deputy": "nobody", "ends_at": "+1"}, 400, "deputy_unknown"),
    ({"deputy": "bob", "ends_at": "+1"}, 400, "deputy_self"),
    ({"deputy": "carol", "ends_at": "-1"}, 400, "ends_before_start"),
    ({"deputy": "carol", "starts_at": "-0.01", "ends_at": "+1"}, 400, "starts_in_past"),
    ({"deputy": "carol", "ends_at": "+91"}, 400, "delegation_too_long"),
    ({"deputy": "carol\x00", "ends_at": "+1"}, 400, "invalid"),
])
def test_refusals_have_codes(w, data, status, code):
    data = {k: later(float(v)) if k.endswith("_at") and v[0] in "+-" else v for k, v in data.items()}
    error(w["bob"].post(URL, data), status, code)
    assert not Delegation.objects.exists()


def test_an_overlapping_delegation_to_the_same_deputy_is_a_conflict(w):
    delegation_create(delegator=w["bob"].user, deputy=w["carol"].user, ends_at=timezone.now() + timedelta(days=2))
    error(w["bob"].post(URL, {"deputy": "carol", "ends_at": later(1)}), 409, "delegation_overlaps")
    assert Delegation.objects.count() == 1


def test_a_non_approver_and_a_deputy_cannot_delegate(w):
    error(w["carol"].post(URL, {"deputy": "dave", "ends_at": later(1)}), 403, "not_approver")
    delegation_create(delegator=w["bob"].user, deputy=w["carol"].user, ends_at=timezone.now() + timedelta(days=2))
    error(w["carol"].post(URL, {"deputy": "dave", "ends_at": later(1)}), 403, "not_approver")  # no chains
    assert Delegation.objects.count() == 1


def test_revoke_by_delegator_or_deputy_others_get_404(w):
    d = delegation_create(delegator=w["bob"].user, deputy=w["carol"].user, ends_at=timezone.now() + timedelta(days=2))
    path = f"{URL}/{d.pk}/revoke"
    error(w["carol"].post(path, otp=False), 403, "otp_required")
    for other in ("alice", "dave"):
        error(w[other].post(path), 404, "not_found")
    error(w["bob"].post(f"{URL}/nope/revoke"), 404, "not_found")
    response = w["carol"].post(path, {"reason": "I am away too"})
    assert response.status_code == 200 and response.json()["state"] == "revoked"
    assert response.json()["revoked_by"] == "carol"
    error(w["bob"].post(path), 409, "already_revoked")
    event = AuditEvent.objects.get(action="delegation.revoked")
    assert event.data["by_role"] == "deputy" and event.data["mfa_method"] == "backup_code"


# -- end to end: real DC, real worker ------------------------------------------------------
def _refused(req, approver, code):
    with pytest.raises(RequestRefused) as e:
        services.request_approve(request=req, approver=approver)
    assert e.value.code == code, e.value.message
    req.refresh_from_db()
    assert req.state == AccessRequest.State.PENDING
    assert not Approval.objects.filter(request=req, approver=approver).exists()


def test_a_deputy_decides_while_the_delegation_runs_and_not_after(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN bob (an approver) delegates to carol (not an approver)
    WHEN carol approves alice's request THEN the grant goes active in AD, recorded on bob's behalf;
    WHEN the delegation has lapsed, or has been revoked, THEN carol's approval is refused (delegation_not_running),
    and a deputy never decides their own request."""
    srv = make_target(mode="manual")
    alice = make_user("alice", groups=["admins"])
    alice.email = "alice@example.org"
    alice.save()
    bob = make_user("bob", groups=["approvers"])
    carol = make_user("carol", groups=["admins"])
    d = delegation_create(delegator=bob, deputy=carol, ends_at=timezone.now() + timedelta(days=1))

    req = services.request_create(requester=alice, target=srv, duration_minutes=30)
    services.request_approve(request=req, approver=carol, comment="for bob")
    grant = wait_state(Grant.objects.get(request=req).id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, srv.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    approval = Approval.objects.get(request=req)
    assert (approval.approver, approval.on_behalf_of, approval.delegation_id) == (carol, bob, d.pk)
    assert grant.state == Grant.State.ACTIVE
    # the requester is told who approved, never who delegated to whom
    told = Notification.objects.filter(object_type="request", object_id=str(req.pk), deliveries__destination=alice.username)
    assert told.exists() and not any(bob.username in n.subject + n.body for n in told)

    own = services.request_create(requester=carol, target=srv, duration_minutes=30)
    _refused(own, carol, "self_approval")

    # the delegation lapses
    Delegation.objects.filter(pk=d.pk).update(starts_at=timezone.now() - timedelta(days=2),
                                              ends_at=timezone.now() - timedelta(minutes=1))
    lapsed = services.request_create(requester=alice, target=make_target(mode="manual"), duration_minutes=30)
    _refused(lapsed, carol, "delegation_not_running")

    # a new one, then revoked
    d2 = delegation_create(delegator=bob, deputy=carol, ends_at=timezone.now() + timedelta(days=1))
    delegation_revoke(delegation=d2, actor=bob)
    _refused(lapsed, carol, "delegation_not_running")
