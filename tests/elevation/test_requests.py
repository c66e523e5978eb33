"""Request rules: eligibility, duration, text, approval, cancel, timeout and extensions.

Database only: no DC, no worker. Approving creates a grant and queues its task with
``transaction.on_commit``; under the ``db`` fixture the test's transaction never commits,
so nothing is queued and the grant stays exactly as the service left it.
"""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.audit.services import audit_verify
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, Approval, Grant, Policy, Target
from jitad.elevation.selectors import approvers
from .builders import policy, target, user

pytestmark = pytest.mark.usefixtures("db")

RequestState = AccessRequest.State


# -- builders ----------------------------------------------------------------------------





def refused(code: str, fn, **kwargs) -> RequestRefused:
    """Call ``fn`` and return the RequestRefused it must raise, with ``code``."""
    with pytest.raises(RequestRefused) as info:
        fn(**kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value.message}"
    return info.value


def trail(obj_type: str, obj_id) -> list[tuple[str, str, str, str]]:
    return list(
        AuditEvent.objects.filter(object_type=obj_type, object_id=str(obj_id)).values_list("action", "actor", "before", "after")
    )


@pytest.fixture
def srv():
    return target("SRV01")


@pytest.fixture
def alice():
    return user("alice", "Ops")


@pytest.fixture
def bob():
    return user("bob", "Leads")


@pytest.fixture
def dave():
    return user("dave", "Leads")


# -- eligibility -------------------------------------------------------------------------
def test_no_policy_means_not_eligible_and_nothing_is_written(srv, alice):
    e = refused("not_eligible", services.request_create, requester=alice, target=srv, duration_minutes=30)
    assert "alice" in e.message and "SRV01" in e.message
    assert not AccessRequest.objects.exists()
    assert not AuditEvent.objects.exists()


def test_user_outside_eligible_groups_and_users_is_not_eligible(srv):
    policy(srv, eligible_groups=["Ops"], eligible_users=["carol"])
    mallory = user("mallory", "Helpdesk")
    refused("not_eligible", services.request_create, requester=mallory, target=srv)


def test_policy_for_another_target_or_disabled_policy_does_not_apply(srv, alice):
    policy(target("SRV02"), name="other-target")
    policy(srv, name="switched-off", enabled=False)
    refused("not_eligible", services.request_create, requester=alice, target=srv)


def test_eligible_by_user_name_case_insensitive(srv):
    policy(srv, eligible_groups=[], eligible_users=["CAROL"])
    carol = user("carol")  # in no group at all
    req = services.request_create(requester=carol, target=srv, duration_minutes=30)
    assert req.state == RequestState.PENDING
    assert req.policy.name == "ops-servers"


def test_eligible_by_group_name_case_insensitive(srv):
    policy(srv, eligible_groups=["SERVER-ADMINS"])
    erin = user("erin", "server-admins")
    req = services.request_create(requester=erin, target=srv, duration_minutes=30)
    assert req.state == RequestState.PENDING


def test_disabled_target_refused_even_for_eligible_user(alice):
    off = target("OLD01", enabled=False)
    policy(off)
    e = refused("target_disabled", services.request_create, requester=alice, target=off)
    assert "OLD01" in e.message
    assert not AccessRequest.objects.exists()


def test_lowest_priority_number_wins(srv, alice):
    """GIVEN two policies matching alice on SRV01, the one with the lower priority number
    created second and named to sort last WHEN she asks THEN that policy's limits apply."""
    policy(srv, name="a-broad", priority=50, max_duration_minutes=480, default_duration_minutes=120)
    strict = policy(srv, name="z-strict", priority=10, max_duration_minutes=30, default_duration_minutes=15)
    req = services.request_create(requester=alice, target=srv)
    assert req.policy == strict
    assert req.duration_minutes == 15
    e = refused("duration_too_long", services.request_create, requester=alice, target=srv, duration_minutes=60)
    assert "z-strict" in e.message and "30" in e.message


# -- duration ----------------------------------------------------------------------------
def test_duration_defaults_from_policy(srv, alice):
    policy(srv, default_duration_minutes=45)
    assert services.request_create(requester=alice, target=srv).duration_minutes == 45
    assert services.request_create(requester=alice, target=srv, duration_minutes="").duration_minutes == 45


def test_duration_above_max_refused_naming_the_limit(srv, alice):
    policy(srv, max_duration_minutes=240)
    e = refused("duration_too_long", services.request_create, requester=alice, target=srv, duration_minutes=241)
    assert "240" in e.message
    # the maximum itself is allowed, and a numeric string is accepted
    assert services.request_create(requester=alice, target=srv, duration_minutes=240).duration_minutes == 240
    assert services.request_create(requester=alice, target=srv, duration_minutes="90").duration_minutes == 90


@pytest.mark.parametrize("value, minutes", [("4h", 240), ("90m", 90), ("1h30m", 90), ("PT2H", 120), (" 45 ", 45)])
def test_duration_in_hours_and_minutes_accepted(srv, alice, value, minutes):
    policy(srv, max_duration_minutes=240)
    assert services.request_create(requester=alice, target=srv, duration_minutes=value).duration_minutes == minutes


def test_duration_too_long_in_hours_names_the_limit_in_hours(srv, alice):
    policy(srv, max_duration_minutes=240)
    e = refused("duration_too_long", services.request_create, requester=alice, target=srv, duration_minutes="4h1m")
    assert "240 minutes (4 h)" in e.message


@pytest.mark.parametrize("value", ["abc", "1.5", " ", "30x", "1h30", "0.5m", [30]])
def test_duration_not_a_whole_number_refused(srv, alice, value):
    policy(srv)
    refused("duration_invalid", services.request_create, requester=alice, target=srv, duration_minutes=value)
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize("value", [0, "0", -5])
def test_duration_zero_or_negative_refused(srv, alice, value):
    policy(srv)
    refused("duration_invalid", services.request_create, requester=alice, target=srv, duration_minutes=value)


# -- justification and ticket ------------------------------------------------------------
def test_justification_required_with_minimum_length(srv, alice):
    policy(srv, require_justification=True, min_justification_length=10)
    refused("justification_required", services.request_create, requester=alice, target=srv, justification="")
    refused("justification_required", services.request_create, requester=alice, target=srv, justification="too short")
    # whitespace does not count towards the minimum
    refused("justification_required", services.request_create, requester=alice, target=srv,
            justification="   short     ")
    req = services.request_create(requester=alice, target=srv, justification="  patch KB5001  ")
    assert req.justification == "patch KB5001"


def test_ticket_required(srv, alice):
    policy(srv, require_ticket=True)
    refused("ticket_required", services.request_create, requester=alice, target=srv)
    refused("ticket_required", services.request_create, requester=alice, target=srv, ticket="   ")
    assert services.request_create(requester=alice, target=srv, ticket="CHG1").ticket == "CHG1"


def test_ticket_pattern_must_match_whole_ticket(srv, alice):
    policy(srv, require_ticket=True, ticket_pattern=r"CHG[0-9]+")
    e = refused("ticket_invalid", services.request_create, requester=alice, target=srv, ticket="INC123")
    assert "INC123" in e.message
    # a prefix match is not enough
    refused("ticket_invalid", services.request_create, requester=alice, target=srv, ticket="CHG123x")
    assert services.request_create(requester=alice, target=srv, ticket="CHG123").ticket == "CHG123"


def test_too_long_inputs_refused(srv, alice):
    policy(srv)
    refused("justification_too_long", services.request_create, requester=alice, target=srv, justification="x" * 2001)
    refused("ticket_invalid", services.request_create, requester=alice, target=srv, ticket="T" * 65)
    assert not AccessRequest.objects.exists()
    req = services.request_create(requester=alice, target=srv, justification="x" * 2000, ticket="T" * 64)
    assert len(req.justification) == 2000 and len(req.ticket) == 64


# -- manual approval ---------------------------------------------------------------------
def test_self_approval_refused_even_for_an_approver(srv):
    policy(srv)
    lead = user("lead", "Ops", "Leads")
    req = services.request_create(requester=lead, target=srv)
    refused("self_approval", services.request_approve, request=req, approver=lead)
    refused("self_approval", services.request_deny, request=req, approver=lead, comment="no")
    req.refresh_from_db()
    assert req.state == RequestState.PENDING
    assert not Approval.objects.exists()


def test_non_approver_refused(srv, alice):
    policy(srv)
    carol = user("carol", "Ops")
    req = services.request_create(requester=alice, target=srv)
    e = refused("not_approver", services.request_approve, request=req, approver=carol)
    assert "carol" in e.message
    refused("not_approver", services.request_deny, request=req, approver=carol, comment="no")
    req.refresh_from_db()
    assert req.state == RequestState.PENDING


def test_approver_group_match_is_case_insensitive(srv, alice):
    policy(srv, approver_groups=["LEADS"])
    lead = user("lead", "leads")
    services.request_approve(request=services.request_create(requester=alice, target=srv), approver=lead)
    assert AccessRequest.objects.get().state == RequestState.APPROVED


def test_two_of_n_approvals(srv, alice, bob, dave):
    """GIVEN a policy needing two approvers WHEN one approves THEN the request stays pending
    without a grant, and the same approver again is refused; WHEN a second distinct approver
    approves THEN it is approved, a grant to the target's group expires after the requested
    duration, and every step is in an intact audit chain."""
    policy(srv, approvals_required=2)
    req = services.request_create(requester=alice, target=srv, duration_minutes=90, justification="db upgrade")
    assert req.approvals_required == 2

    services.request_approve(request=req, approver=bob, comment="fine by me")
    req.refresh_from_db()
    assert req.state == RequestState.PENDING
    assert not Grant.objects.exists()
    refused("already_decided", services.request_approve, request=req, approver=bob)
    assert Approval.objects.filter(request=req).count() == 1

    before = timezone.now()
    services.request_approve(request=req, approver=dave, comment="ok")
    after = timezone.now()
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED
    assert req.decided_at is not None
    grant = Grant.objects.get(request=req)
    assert grant.user == alice and grant.target == srv and grant.group_dn == srv.group_dn
    assert grant.state == Grant.State.GRANTING
    assert before + timedelta(minutes=90) <= grant.expires_at <= after + timedelta(minutes=90)

    assert trail("request", req.pk) == [
        ("request.created", "alice", "", "pending"),
        ("request.approval_recorded", "bob", "pending", "pending"),
        ("request.approval_recorded", "dave", "pending", "pending"),
        ("request.approved", "dave", "pending", "approved"),
    ]
    assert trail("grant", grant.pk) == [
        ("grant.created", "dave", "", "approved"),
        ("grant.granting", "system:engine", "approved", "granting"),
    ]
    created = AuditEvent.objects.get(action="request.created")
    assert created.reason == "db upgrade"
    assert created.data["duration_minutes"] == 90 and created.data["policy"] == "ops-servers"
    assert audit_verify() == []


def test_distinct_groups_need_a_peer_and_a_manager(srv, alice, bob, dave):
    """GIVEN 2 approvals from distinct groups (Leads, Managers) WHEN two Leads approve THEN
    the second is refused naming the group still needed, and nothing is recorded for it;
    WHEN a Manager approves THEN the request is approved."""
    policy(srv, approvals_required=2, approver_groups=["Leads", "Managers"], distinct_approver_groups=True)
    req = services.request_create(requester=alice, target=srv)
    services.request_approve(request=req, approver=bob)
    e = refused("group_already_counted", services.request_approve, request=req, approver=dave)
    assert "Managers" in e.message
    assert Approval.objects.filter(request=req).count() == 1
    req.refresh_from_db()
    assert req.state == RequestState.PENDING
    services.request_approve(request=req, approver=user("maggie", "Managers"), comment="ok")
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED
    assert list(req.approvals.order_by("at").values_list("approver_groups", flat=True)) == [["Leads"], ["Managers"]]


def test_distinct_groups_let_a_member_of_both_count_for_the_open_one(srv, alice):
    """A person in both groups counts for whichever group the other approver leaves open."""
    policy(srv, approvals_required=2, approver_groups=["Leads", "Managers"], distinct_approver_groups=True)
    both, lead = user("both", "Leads", "Managers"), user("lead", "Leads")
    req = services.request_create(requester=alice, target=srv)
    services.request_approve(request=req, approver=both)
    services.request_approve(request=req, approver=lead)
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED


@pytest.mark.parametrize("sets,distinct,expected", [
    ([], True, 0),
    ([["A"], ["A"]], False, 2),
    ([["A"], ["A"]], True, 1),
    ([["A", "B"], ["A"]], True, 2),
    ([["a"], ["A", "b"], ["B"]], True, 2),
    ([["A", "B"], ["B", "C"], ["A"]], True, 3),
])
def test_approvals_counted_is_a_maximum_matching(sets, distinct, expected):
    from jitad.elevation.selectors.approvers import approvals_counted

    assert approvals_counted(sets, distinct_groups=distinct) == expected


def test_target_approver_groups_add_to_the_policy_s(alice):
    """The application's owners (named on the target) may approve besides the policy's approvers,
    for that target only."""
    sql, other = target("SQL01", approver_groups=["App-Owners"]), target("SRV09")
    policy(sql, other)
    owner = user("owner", "App-Owners")
    on_sql = services.request_create(requester=alice, target=sql)
    on_other = services.request_create(requester=alice, target=other)
    assert approvers.can_decide(user=owner, request=on_sql)
    assert not approvers.can_decide(user=owner, request=on_other)
    refused("not_approver", services.request_approve, request=on_other, approver=owner)
    services.request_approve(request=on_sql, approver=owner)
    on_sql.refresh_from_db()
    assert on_sql.state == RequestState.APPROVED
    assert set(approvers.requests_decidable_by(user=owner)) == set()
    assert set(approvers.requests_decidable_by(user=user("lead2", "Leads"))) == {on_other}


def test_approving_under_a_disabled_policy_is_refused_but_deny_works(srv, alice, bob):
    p = policy(srv)
    req = services.request_create(requester=alice, target=srv)
    Policy.objects.filter(pk=p.pk).update(enabled=False)
    refused("policy_disabled", services.request_approve, request=req, approver=bob)
    services.request_deny(request=req, approver=bob, comment="policy withdrawn")
    req.refresh_from_db()
    assert req.state == RequestState.DENIED


def test_a_blocked_requester_s_request_cannot_be_approved(srv, alice, bob):
    policy(srv)
    req = services.request_create(requester=alice, target=srv)
    alice.is_active = False
    alice.save()
    refused("requester_blocked", services.request_approve, request=req, approver=bob)
    assert not Grant.objects.exists()
    assert approvers.requests_decidable_by(user=bob).count() == 0


def test_inactive_approver_refused(srv, alice, bob):
    policy(srv)
    req = services.request_create(requester=alice, target=srv)
    bob.is_active = False
    bob.save()
    refused("not_approver", services.request_approve, request=req, approver=bob)


def test_admin_revoke_needs_an_approver_for_the_grant_or_an_administrator(srv, alice, bob):
    policy(srv)
    req = services.request_create(requester=alice, target=srv)
    services.request_approve(request=req, approver=bob)
    grant = Grant.objects.get(request=req)
    refused("not_allowed", services.grant_revoke, grant=grant, actor=user("carol", "Ops"), reason="x")
    refused("reason_required", services.grant_revoke, grant=grant, actor=bob, reason="  ")
    services.grant_revoke(grant=grant, actor=bob, reason="incident 42")
    grant.refresh_from_db()
    assert grant.revoke_reason == Grant.RevokeReason.ADMIN and grant.revoke_requested_by == "bob"


def test_deny_needs_a_comment_and_one_deny_ends_it(srv, alice, bob, dave):
    """GIVEN a two-approver request with one approval WHEN a second approver denies THEN
    it is denied at once; a deny without a comment is refused first."""
    policy(srv, approvals_required=2)
    req = services.request_create(requester=alice, target=srv)
    services.request_approve(request=req, approver=bob)
    refused("comment_required", services.request_deny, request=req, approver=dave, comment="")
    refused("comment_required", services.request_deny, request=req, approver=dave, comment="   ")

    services.request_deny(request=req, approver=dave, comment="not during the freeze")
    req.refresh_from_db()
    assert req.state == RequestState.DENIED
    assert req.decided_at is not None
    assert not Grant.objects.exists()
    deny = Approval.objects.get(request=req, approver=dave)
    assert deny.decision == Approval.Decision.DENY and deny.comment == "not during the freeze"
    event = AuditEvent.objects.get(action="request.denied")
    assert (event.actor, event.before, event.after, event.reason) == ("dave", "pending", "denied", "not during the freeze")
    assert audit_verify() == []


def test_deciding_a_request_that_is_not_pending_refused(srv, alice, bob, dave):
    policy(srv)
    approved = services.request_create(requester=alice, target=srv)
    services.request_approve(request=approved, approver=bob)
    e = refused("not_pending", services.request_approve, request=approved, approver=dave)
    assert "approved" in e.message
    refused("not_pending", services.request_deny, request=approved, approver=dave, comment="too late")

    denied = services.request_create(requester=alice, target=srv)
    services.request_deny(request=denied, approver=bob, comment="no")
    refused("not_pending", services.request_approve, request=denied, approver=dave)
    assert Grant.objects.count() == 1  # only the approved one


# -- automatic approval ------------------------------------------------------------------
def test_auto_policy_approves_and_creates_a_claimed_grant(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO)
    before = timezone.now()
    req = services.request_create(requester=alice, target=srv, duration_minutes=20)
    assert req.state == RequestState.APPROVED
    assert req.approvals_required == 0
    grant = Grant.objects.get(request=req)
    assert grant.state == Grant.State.GRANTING
    assert grant.claim_token is not None
    assert grant.lease_until is not None and grant.lease_until > before
    assert before + timedelta(minutes=20) <= grant.expires_at <= timezone.now() + timedelta(minutes=20)
    assert [a for a, *_ in trail("request", req.pk)] == ["request.created", "request.approved"]
    approved = AuditEvent.objects.get(action="request.approved")
    assert approved.actor == "system:policy"
    assert "auto-approved" in approved.reason
    assert trail("grant", grant.pk)[0][:2] == ("grant.created", "system:policy")
    assert audit_verify() == []


# -- cancel ------------------------------------------------------------------------------
def test_only_the_requester_cancels_and_only_while_pending(srv, alice, bob):
    policy(srv)
    req = services.request_create(requester=alice, target=srv)
    refused("not_requester", services.request_cancel, request=req, actor=bob)
    req.refresh_from_db()
    assert req.state == RequestState.PENDING

    services.request_cancel(request=req, actor=alice)
    req.refresh_from_db()
    assert req.state == RequestState.CANCELLED
    assert trail("request", req.pk)[-1] == ("request.cancelled", "alice", "pending", "cancelled")
    refused("not_pending", services.request_cancel, request=req, actor=alice)
    refused("not_pending", services.request_approve, request=req, approver=bob)

    approved = services.request_create(requester=alice, target=srv)
    services.request_approve(request=approved, approver=bob)
    refused("not_pending", services.request_cancel, request=approved, actor=alice)
    assert audit_verify() == []


# -- pending timeout ---------------------------------------------------------------------
def test_expire_pending_closes_only_requests_past_their_deadline(srv, alice, bob):
    """GIVEN two pending requests, one past its pending_until WHEN the timeout job runs
    THEN only that one becomes expired_unapproved, audited as the system, and can no
    longer be approved; the fresh one is untouched."""
    policy(srv, pending_timeout_minutes=30)
    stale = services.request_create(requester=alice, target=srv)
    fresh = services.request_create(requester=alice, target=srv)
    assert timedelta(minutes=29) < stale.pending_until - stale.created_at <= timedelta(minutes=31)
    AccessRequest.objects.filter(pk=stale.pk).update(pending_until=timezone.now() - timedelta(seconds=1))

    assert services.requests_expire_pending() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.state == RequestState.EXPIRED_UNAPPROVED and stale.decided_at is not None
    assert fresh.state == RequestState.PENDING and fresh.decided_at is None
    assert trail("request", stale.pk)[-1] == ("request.expired_unapproved", "system:timeout", "pending", "expired_unapproved")
    assert not AuditEvent.objects.filter(object_id=str(fresh.pk), action="request.expired_unapproved").exists()
    refused("not_pending", services.request_approve, request=stale, approver=bob)

    assert services.requests_expire_pending() == 0  # idempotent
    # the deadline itself counts as past
    assert services.requests_expire_pending(now=fresh.pending_until) == 1
    assert audit_verify() == []


# -- extensions --------------------------------------------------------------------------
def _active_grant(requester, on: Target, minutes: int = 60) -> Grant:
    req = services.request_create(requester=requester, target=on, duration_minutes=minutes)
    if req.state != RequestState.APPROVED:
        raise AssertionError("the setup expects an auto policy")
    Grant.objects.filter(request=req).update(state=Grant.State.ACTIVE, claim_token=None, lease_until=None)
    return Grant.objects.get(request=req)


def test_extend_active_grant_under_auto_policy(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_extensions=2, max_duration_minutes=120)
    grant = _active_grant(alice, srv)
    old = grant.expires_at

    ext = services.request_extend(grant=grant, requester=alice, duration_minutes=30, justification="overrun")
    assert ext.kind == AccessRequest.Kind.EXTENSION and ext.extends_id == grant.pk
    assert ext.state == RequestState.APPROVED
    grant.refresh_from_db()
    assert grant.expires_at == old + timedelta(minutes=30)
    assert grant.extensions == 1
    assert grant.state == Grant.State.ACTIVE
    assert Grant.objects.count() == 1  # an extension never creates a second grant
    extended = AuditEvent.objects.get(action="grant.extended")
    assert (extended.actor, extended.object_id, extended.reason) == ("system:policy", str(grant.pk), "overrun")
    assert extended.data["old_expires_at"] == old.isoformat()
    assert extended.data["expires_at"] == grant.expires_at.isoformat()
    assert audit_verify() == []


def test_extension_count_capped_by_policy(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_extensions=1)
    grant = _active_grant(alice, srv)
    services.request_extend(grant=grant, requester=alice, duration_minutes=10)
    grant.refresh_from_db()
    e = refused("too_many_extensions", services.request_extend, grant=grant, requester=alice, duration_minutes=10)
    assert "1" in e.message
    grant.refresh_from_db()
    assert grant.extensions == 1


def test_extension_count_checked_against_the_stored_grant(srv, alice):
    """GIVEN a grant object loaded before it was extended (a second browser tab, or two
    submissions racing) WHEN the holder extends again through that stale object THEN the
    policy's cap still holds: the count that matters is the one in the database."""
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_extensions=1)
    grant = _active_grant(alice, srv)
    stale = Grant.objects.get(pk=grant.pk)
    services.request_extend(grant=grant, requester=alice, duration_minutes=10)
    refused("too_many_extensions", services.request_extend, grant=stale, requester=alice, duration_minutes=10)
    assert Grant.objects.get(pk=grant.pk).extensions == 1


def test_extension_duration_above_max_refused(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_duration_minutes=120)
    grant = _active_grant(alice, srv)
    e = refused("duration_too_long", services.request_extend, grant=grant, requester=alice, duration_minutes=121)
    assert "120" in e.message
    grant.refresh_from_db()
    assert grant.extensions == 0
    assert not AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION).exists()


def test_only_the_holder_extends(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO)
    grant = _active_grant(alice, srv)
    other = user("frank", "Ops")  # eligible for the target, but not the holder
    refused("not_requester", services.request_extend, grant=grant, requester=other, duration_minutes=10)
    assert not AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION).exists()


def test_revoked_grant_cannot_be_extended(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO)
    grant = _active_grant(alice, srv)
    Grant.objects.filter(pk=grant.pk).update(state=Grant.State.REVOKED)
    grant.refresh_from_db()
    refused("not_extendable", services.request_extend, grant=grant, requester=alice, duration_minutes=10)


def test_second_pending_extension_refused_under_manual_policy(srv, alice, bob):
    """GIVEN an active grant under a manual policy with an extension waiting for a
    decision WHEN the holder asks again THEN refused (extension_pending); once the first
    is approved the grant is extended by it and the holder may ask again."""
    p = policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_extensions=3)
    grant = _active_grant(alice, srv)
    Policy.objects.filter(pk=p.pk).update(approval_mode=Policy.ApprovalMode.MANUAL)
    old = grant.expires_at

    first = services.request_extend(grant=grant, requester=alice, duration_minutes=15)
    assert first.state == RequestState.PENDING
    grant.refresh_from_db()
    assert grant.expires_at == old and grant.extensions == 0
    refused("extension_pending", services.request_extend, grant=grant, requester=alice, duration_minutes=15)
    assert AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION).count() == 1

    services.request_approve(request=first, approver=bob, comment="ok")
    grant.refresh_from_db()
    assert grant.extensions == 1
    assert grant.expires_at == old + timedelta(minutes=15)
    assert trail("grant", grant.pk)[-1][:2] == ("grant.extended", "bob")
    second = services.request_extend(grant=grant, requester=alice, duration_minutes=15)
    assert second.state == RequestState.PENDING
    assert audit_verify() == []


def test_a_policy_without_extensions_refuses_one_saying_so(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_extensions=0)
    grant = _active_grant(alice, srv)
    e = refused("too_many_extensions", services.request_extend, grant=grant, requester=alice, duration_minutes=10)
    assert "allows no extensions" in e.message
    assert not AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION).exists()


def test_extensions_never_carry_a_grant_past_the_policys_longest(srv, alice):
    """GIVEN a 1 h grant under a policy of at most 2 h WHEN the holder asks for 61 more
    minutes THEN refused (extension_too_long) naming what is left; 1 h is granted; and then
    nothing more can be (total_duration_reached), however many extensions remain."""
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_extensions=5, max_duration_minutes=120)
    grant = _active_grant(alice, srv, minutes=60)
    start = grant.created_at

    e = refused("extension_too_long", services.request_extend, grant=grant, requester=alice, duration_minutes="1h1m")
    assert f"Grant #{grant.pk} can get at most 1 h more" in e.message and "2 h in all" in e.message
    services.request_extend(grant=grant, requester=alice, duration_minutes="1h")
    grant.refresh_from_db()
    assert grant.expires_at == start + timedelta(minutes=120)
    e = refused("total_duration_reached", services.request_extend, grant=grant, requester=alice, duration_minutes=1)
    assert "at most 2 h in all" in e.message


def test_an_extension_without_a_duration_is_trimmed_to_what_is_left(srv, alice):
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, default_duration_minutes=60, max_duration_minutes=90)
    grant = _active_grant(alice, srv, minutes=60)
    ext = services.request_extend(grant=grant, requester=alice, duration_minutes=None)
    assert ext.duration_minutes == 30
    grant.refresh_from_db()
    assert grant.expires_at == grant.created_at + timedelta(minutes=90)


def test_an_approved_extension_is_capped_when_the_policy_shrank_meanwhile(srv, alice, bob):
    """GIVEN a 30 min extension waiting for approval on a 60 min grant WHEN the policy's
    maximum drops to 75 min before it is approved THEN the grant ends at 75 min, not 90."""
    p = policy(srv, approval_mode=Policy.ApprovalMode.AUTO, max_duration_minutes=240)
    grant = _active_grant(alice, srv, minutes=60)
    Policy.objects.filter(pk=p.pk).update(approval_mode=Policy.ApprovalMode.MANUAL)
    ext = services.request_extend(grant=grant, requester=alice, duration_minutes=30)
    Policy.objects.filter(pk=p.pk).update(max_duration_minutes=75)
    services.request_approve(request=AccessRequest.objects.get(pk=ext.pk), approver=bob)
    grant.refresh_from_db()
    assert grant.expires_at == grant.created_at + timedelta(minutes=75)
    assert AuditEvent.objects.get(action="grant.extended").data["capped_by_policy"] is True
