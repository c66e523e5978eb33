"""Approval stages (AND), and deputies deciding inside them: the services and the queue selectors agree.

Database only, except the last test, which runs a two-stage request through a real DC and worker.
"""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, Approval, Delegation, Grant
from jitad.elevation.selectors import approvers
from jitad.elevation.selectors.access import access_overview
from jitad.elevation.selectors.workflow import stage_default
from jitad.notifications.models import Notification

from .builders import policy, target, user
from .helpers import ad_is_member, ad_user_dn, wait_state

RequestState = AccessRequest.State

PEER_MANAGER = [
    stage_default(name="peer", approver_groups=["Peers"]),
    stage_default(name="manager", approver_groups=["Managers"]),
]


def refused(code: str, fn, **kwargs) -> RequestRefused:
    with pytest.raises(RequestRefused) as info:
        fn(**kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value.message}"
    return info.value


def actions(req) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="request", object_id=str(req.pk)).order_by("id")
                .values_list("action", flat=True))


@pytest.fixture
def world(db):
    srv = target("SRV01", approver_groups=["Owners"])
    policy(srv, stages=PEER_MANAGER, approver_groups=["Peers", "Managers"], approvals_required=2)
    people = {
        "alice": user("alice", "Ops"),
        "peer": user("peer", "Peers"),
        "manager": user("manager", "Managers"),
        "both": user("both", "Peers", "Managers"),
        "owner": user("owner", "Owners"),
        "deputy": user("deputy"),
    }
    for name, person in people.items():
        person.email = f"{name}@jitad.test"
        person.save(update_fields=["email"])
    return {"srv": srv, **people}


def ask(w) -> AccessRequest:
    return services.request_create(requester=w["alice"], target=w["srv"], duration_minutes=30)


def test_a_request_snapshots_its_stages_and_opens_the_first(world):
    req = ask(world)
    assert req.state == RequestState.PENDING
    assert [s["name"] for s in req.stages] == ["peer", "manager"]
    assert req.stage == 0 and req.stage_opened_at is not None
    assert req.stage_groups == ["Peers", "Owners"]  # the target's approvers on the first stage only
    assert req.approvals_required == 2
    created = AuditEvent.objects.get(object_type="request", object_id=str(req.pk), action="request.created")
    assert [s["name"] for s in created.data["stages"]] == ["peer", "manager"]
    assert created.data["stage_groups"] == ["Peers", "Owners"]


def test_stages_pass_in_order_peer_then_manager(world):
    """GIVEN a peer stage then a manager stage
    WHEN the manager tries during stage 1 THEN refused; WHEN the peer approves THEN stage 2 opens for managers only,
    its approvers are told; WHEN the manager approves THEN the request is approved and a grant made."""
    req = ask(world)
    refused("not_approver", services.request_approve, request=req, approver=world["manager"])
    assert not approvers.can_decide(user=world["manager"], request=req)
    assert not approvers.requests_decidable_by(user=world["manager"]).exists()
    assert approvers.requests_decidable_by(user=world["peer"]).get() == req

    services.request_approve(request=req, approver=world["peer"], comment="looks right")
    req.refresh_from_db()
    assert req.state == RequestState.PENDING and req.stage == 1
    assert req.stage_groups == ["Managers"]
    assert access_overview(user=world["alice"]).pending[0].stage_text == "stage 2 of 2 (manager): 0 of 1"
    note = Notification.objects.filter(event="request.stage_opened", object_id=str(req.pk)).get()
    assert "stage 2 of 2 (manager)" in note.subject
    assert not approvers.requests_decidable_by(user=world["peer"]).exists()
    assert approvers.requests_decidable_by(user=world["manager"]).get() == req
    # The target's approvers decide the first stage only.
    refused("not_approver", services.request_approve, request=req, approver=world["owner"])

    services.request_approve(request=req, approver=world["manager"], comment="ok")
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED and req.stage == 2
    assert Grant.objects.filter(request=req).exists()
    assert list(req.approvals.order_by("stage").values_list("approver__username", "stage")) == [("peer", 0), ("manager", 1)]
    assert actions(req) == ["request.created", "request.approval_recorded", "request.stage_passed",
                            "request.stage_opened", "request.approval_recorded", "request.stage_passed",
                            "request.approved"]
    assert approvers.approval_progress(req) == (2, 2)


def test_one_person_decides_once_even_across_stages(world):
    """The peer of stage 1 cannot also be the manager of stage 2."""
    req = ask(world)
    services.request_approve(request=req, approver=world["both"])
    refused("already_decided", services.request_approve, request=req, approver=world["both"])
    assert not approvers.requests_decidable_by(user=world["both"]).exists()


def test_a_denial_in_any_stage_ends_the_request(world):
    req = ask(world)
    services.request_approve(request=req, approver=world["peer"])
    services.request_deny(request=req, approver=world["manager"], comment="not now")
    req.refresh_from_db()
    assert req.state == RequestState.DENIED
    assert req.approvals.get(approver=world["manager"]).stage == 1


def test_distinct_groups_count_within_a_stage(db):
    srv = target("SRV02")
    policy(srv, name="dual", approvals_required=3, approver_groups=["A", "B", "M"], stages=[
        stage_default(name="pair", approvals_required=2, approver_groups=["A", "B"], distinct_groups=True),
        stage_default(name="manager", approver_groups=["M"]),
    ])
    alice, a1, a2, b1, m = user("alice", "Ops"), user("a1", "A"), user("a2", "A"), user("b1", "B"), user("m", "M")
    req = services.request_create(requester=alice, target=srv)
    services.request_approve(request=req, approver=a1)
    refused("group_already_counted", services.request_approve, request=req, approver=a2)
    services.request_approve(request=req, approver=b1)
    req.refresh_from_db()
    assert req.stage == 1
    services.request_approve(request=req, approver=m)
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED


def test_existing_refusals_still_hold_inside_stages(world):
    req = ask(world)
    refused("self_approval", services.request_approve, request=req, approver=world["alice"])
    world["srv"].policies.update(enabled=False)
    refused("policy_disabled", services.request_approve, request=req, approver=world["peer"])


# -- what people see ------------------------------------------------------------------------
def test_the_admin_and_my_access_show_the_stages(world, verified_client):
    """GIVEN a two-stage request WHEN the manager opens it during stage 1 THEN the page lists both stages, the open
    one, its groups, and no decision buttons; the requester's My access says "stage 1 of 2 (peer): 0 of 1";
    WHEN the peer's deputy approves THEN the admin shows the approval on the peer's behalf."""
    from django.urls import reverse

    req = services.request_create(requester=world["alice"], target=world["srv"], duration_minutes=30,
                                  client_ip="10.9.8.7")
    page = verified_client(world["manager"]).get(f"/admin/elevation/accessrequest/{req.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Open: stage 1 of 2 (peer): 0 of 1" in html
    assert "Peers, Owners" in html and "manager" in html and "10.9.8.7" in html
    assert 'value="approve"' not in html

    mine = verified_client(world["alice"]).get(reverse("elevation:access")).content.decode()
    assert "stage 1 of 2 (peer): 0 of 1" in mine

    delegate(world["peer"], world["deputy"])
    services.request_approve(request=req, approver=world["deputy"])
    html = verified_client(world["manager"]).get(f"/admin/elevation/accessrequest/{req.pk}/change/").content.decode()
    assert "deputy for peer (approve)" in html
    assert "Open: stage 2 of 2 (manager): 0 of 1" in html
    assert 'value="approve"' in html
    queue = verified_client(world["manager"]).get("/admin/elevation/accessrequest/").content.decode()
    assert "stage 2 of 2 (manager)" in queue


# -- deputies ------------------------------------------------------------------------------
def delegate(delegator, deputy, *, hours_from=-1, hours_to=2) -> Delegation:
    now = timezone.now()
    return Delegation.objects.create(delegator=delegator, deputy=deputy, starts_at=now + timedelta(hours=hours_from),
                                     ends_at=now + timedelta(hours=hours_to), created_by="test")


def test_a_deputy_decides_in_the_delegators_name_while_the_delegation_runs(world):
    """GIVEN the peer delegated to a deputy in no approver group
    WHEN the deputy approves stage 1 THEN the approval is the peer's (on_behalf_of, audited), and the peer
    cannot decide again; the deputy was in the queue before and is not after."""
    d = delegate(world["peer"], world["deputy"])
    req = ask(world)
    assert world["deputy"] in approvers.approvers_to_notify(request=req)
    assert approvers.requests_decidable_by(user=world["deputy"]).get() == req
    assert approvers.can_decide(user=world["deputy"], request=req)
    assert approvers.approver_scope(user=world["deputy"]) is not None
    assert AccessRequest.objects.filter(approvers.approver_scope(user=world["deputy"])).get() == req

    services.request_approve(request=req, approver=world["deputy"], comment="for peer")
    approval = Approval.objects.get(request=req)
    assert approval.on_behalf_of == world["peer"] and approval.delegation == d
    recorded = AuditEvent.objects.get(object_type="request", object_id=str(req.pk), action="request.approval_recorded")
    assert recorded.actor == "deputy" and recorded.data["on_behalf_of"] == "peer"
    refused("already_decided", services.request_approve, request=req, approver=world["peer"])
    assert not approvers.requests_decidable_by(user=world["peer"]).exists()
    refused("already_decided", services.request_approve, request=req, approver=world["deputy"])
    # Stage 2 is the managers': another deputy of the peer has no say there.
    other = user("other-deputy")
    delegate(world["peer"], other)
    refused("not_approver", services.request_approve, request=req, approver=other)
    assert not approvers.requests_decidable_by(user=other).exists()


def test_a_deputy_is_refused_once_the_delegation_ends_or_is_revoked(world):
    d = delegate(world["peer"], world["deputy"])
    req = ask(world)
    Delegation.objects.filter(pk=d.pk).update(ends_at=timezone.now() - timedelta(seconds=1),
                                              starts_at=timezone.now() - timedelta(hours=2))
    error = refused("delegation_not_running", services.request_approve, request=req, approver=world["deputy"])
    assert "Your delegation from peer" in error.message and " ended at " in error.message
    assert not approvers.requests_decidable_by(user=world["deputy"]).exists()
    assert not approvers.can_decide(user=world["deputy"], request=req)
    Delegation.objects.filter(pk=d.pk).update(ends_at=timezone.now() + timedelta(hours=1), revoked_at=timezone.now(),
                                              revoked_by="peer")
    error = refused("delegation_not_running", services.request_approve, request=req, approver=world["deputy"])
    assert "was ended by peer at " in error.message
    Delegation.objects.filter(pk=d.pk).update(revoked_at=None, starts_at=timezone.now() + timedelta(minutes=30))
    error = refused("delegation_not_running", services.request_approve, request=req, approver=world["deputy"])
    assert "starts only at " in error.message
    assert not Approval.objects.filter(request=req).exists()


def test_a_deputy_never_decides_the_delegators_own_request_nor_their_own(world):
    delegate(world["peer"], world["deputy"])
    srv = world["srv"]
    srv.policies.update(eligible_groups=["Ops", "Peers"])
    own = services.request_create(requester=world["peer"], target=srv)
    refused("not_approver", services.request_approve, request=own, approver=world["deputy"])
    assert not approvers.requests_decidable_by(user=world["deputy"]).filter(pk=own.pk).exists()
    # A delegation to the requester gives them nothing on their own request.
    delegate(world["manager"], world["alice"])
    req = ask(world)
    refused("self_approval", services.request_approve, request=req, approver=world["alice"])


def test_a_deputys_denial_ends_the_request_in_the_delegators_name(world):
    delegate(world["peer"], world["deputy"])
    req = ask(world)
    services.request_deny(request=req, approver=world["deputy"], comment="peer would not")
    denied = Approval.objects.get(request=req)
    assert denied.decision == "deny" and denied.on_behalf_of == world["peer"]
    event = AuditEvent.objects.get(object_type="request", object_id=str(req.pk), action="request.denied")
    assert event.data["on_behalf_of"] == "peer"


# -- end to end ----------------------------------------------------------------------------
def test_two_stages_end_to_end_make_the_membership(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN a two-stage policy on a real DC WHEN a manager tries first THEN refused; WHEN the peer then the
    manager approve THEN the worker puts the requester in the AD group."""
    tgt = make_target(mode="manual", approvals=2, approver_groups=("peers", "managers"), stages=[
        stage_default(name="peer", approver_groups=["peers"]), stage_default(name="manager", approver_groups=["managers"])])
    alice = make_user("alice", groups=["admins"])
    peer = make_user("peer", groups=["peers"])
    manager = make_user("mgr", groups=["managers"])
    req = services.request_create(requester=alice, target=tgt, duration_minutes=30)
    refused("not_approver", services.request_approve, request=req, approver=manager)
    assert not Grant.objects.filter(request=req).exists()
    services.request_approve(request=req, approver=peer)
    assert not Grant.objects.filter(request=req).exists()
    services.request_approve(request=req, approver=manager)
    grant = wait_state(Grant.objects.get(request=req).id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, tgt.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    assert grant.user == alice


def test_a_deputy_end_to_end_during_and_after_the_delegation(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN an approver who delegated to a deputy in no approver group
    WHEN the deputy approves during the delegation THEN the worker makes the membership, the approval in the
    approver's name; WHEN the delegation has ended THEN the same deputy is refused on the next request."""
    tgt = make_target(mode="manual", approver_groups=("approvers",))
    alice = make_user("alice", groups=["admins"])
    boss = make_user("boss", groups=["approvers"])
    deputy = make_user("deputy")
    delegation = delegate(boss, deputy)
    req = services.request_create(requester=alice, target=tgt, duration_minutes=30)
    services.request_approve(request=req, approver=deputy, comment="for boss")
    assert Approval.objects.get(request=req).on_behalf_of == boss
    wait_state(Grant.objects.get(request=req).id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, tgt.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))

    Delegation.objects.filter(pk=delegation.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    later = services.request_create(requester=alice, target=tgt, duration_minutes=30)
    refused("delegation_not_running", services.request_approve, request=later, approver=deputy)
    assert not Grant.objects.filter(request=later).exists()
