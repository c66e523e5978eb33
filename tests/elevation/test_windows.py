"""Time windows, judged at the access's start: refuse, approve at once, add a stage, or the policy as written;
and scheduled starts (in the past, too far, not allowed). The last tests run on a real DC and worker."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, Grant, Policy
from jitad.elevation.selectors.workflow import DAY_NAMES, stage_default, zone

from .builders import policy, target, user
from .helpers import ad_is_member, ad_user_dn, wait_state

RequestState = AccessRequest.State
EXTRA = stage_default(name="on-call manager", approver_groups=["OnCall"])


def always(then: str, **extra) -> dict:
    """Windows whose one rule covers every minute of the week."""
    return {"timezone": "Europe/Paris", "rules": [{"days": ["mon-sun"], "hours": "00:00-24:00", "then": then}],
            "otherwise": "refuse", **extra}


def never(otherwise: str, **extra) -> dict:
    """Windows with no rule: ``otherwise`` decides every time."""
    return {"timezone": "UTC", "rules": [], "otherwise": otherwise, **extra}


def refused(code: str, fn, **kwargs) -> RequestRefused:
    with pytest.raises(RequestRefused) as info:
        fn(**kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value.message}"
    return info.value


@pytest.fixture
def people(db):
    return {"alice": user("alice", "Ops"), "lead": user("lead", "Leads"), "oncall": user("oncall", "OnCall")}


def test_outside_the_windows_a_request_is_refused_naming_them(people):
    """GIVEN a policy whose only window is a minute on a day that is not today in Paris (so the test never runs
    inside it, whatever the date) WHEN someone asks now THEN the request is refused naming the windows."""
    srv = target()
    today = timezone.now().astimezone(zone("Europe/Paris")).weekday()
    day = DAY_NAMES[(today + 3) % 7]
    policy(srv, time_windows={"timezone": "Europe/Paris", "otherwise": "refuse",
                              "rules": [{"days": [day], "hours": "00:00-00:01", "then": "policy"}]})
    e = refused("outside_window", services.request_create, requester=people["alice"], target=srv)
    assert f"{day} 00:00-00:01: policy; otherwise refuse (Europe/Paris)" in e.message
    assert not AccessRequest.objects.exists()


def test_a_window_that_approves_needs_no_approver(people):
    srv = target()
    policy(srv, time_windows=always("auto"))
    req = services.request_create(requester=people["alice"], target=srv)
    assert req.state == RequestState.APPROVED and req.window_action == "auto" and req.stages == []
    assert Grant.objects.filter(request=req).exists()
    approved = AuditEvent.objects.get(object_type="request", object_id=str(req.pk), action="request.approved")
    assert approved.actor == "system:policy" and "time window" in approved.reason


def test_a_window_with_an_extra_stage_appends_it(people):
    srv = target()
    policy(srv, time_windows=never("extra_stage", extra_stage=EXTRA))
    req = services.request_create(requester=people["alice"], target=srv)
    assert req.window_action == "extra_stage"
    assert [s["name"] for s in req.stages] == ["approval", "on-call manager"]
    assert req.approvals_required == 2
    services.request_approve(request=req, approver=people["lead"])
    req.refresh_from_db()
    assert req.stage == 1 and req.stage_groups == ["OnCall"]
    services.request_approve(request=req, approver=people["oncall"])
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED


def test_an_automatic_policy_out_of_hours_waits_for_the_extra_stage(people):
    srv = target()
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, approvals_required=0,
           time_windows=never("extra_stage", extra_stage=EXTRA))
    req = services.request_create(requester=people["alice"], target=srv)
    assert req.state == RequestState.PENDING and [s["name"] for s in req.stages] == ["on-call manager"]
    assert req.stage_groups == ["OnCall"]


def test_the_window_is_judged_at_the_scheduled_start(people):
    """GIVEN windows open only from one to three hours from now WHEN asking for now THEN refused;
    WHEN asking for a start two hours ahead THEN accepted, the start stored."""
    now = timezone.now()
    hours = f"{(now + timedelta(hours=1)):%H}:00-{(now + timedelta(hours=3)):%H}:00"
    srv = target()
    policy(srv, schedule_max_lead_minutes=6 * 60,
           time_windows={"timezone": "UTC", "rules": [{"hours": hours, "then": "policy"}], "otherwise": "refuse"})
    refused("outside_window", services.request_create, requester=people["alice"], target=srv)
    start = now + timedelta(hours=2)
    req = services.request_create(requester=people["alice"], target=srv, starts_at=start)
    assert req.state == RequestState.PENDING and req.starts_at == start and req.window_action == "policy"


def test_scheduled_starts_are_checked(people):
    srv = target()
    p = policy(srv)
    now = timezone.now()
    refused("schedule_not_allowed", services.request_create, requester=people["alice"], target=srv,
            starts_at=now + timedelta(minutes=10))
    Policy.objects.filter(pk=p.pk).update(schedule_max_lead_minutes=60)
    refused("start_in_past", services.request_create, requester=people["alice"], target=srv,
            starts_at=now - timedelta(minutes=5))
    refused("start_too_far", services.request_create, requester=people["alice"], target=srv,
            starts_at=now + timedelta(minutes=61))
    # A few seconds of clock skew is "now".
    req = services.request_create(requester=people["alice"], target=srv, starts_at=now - timedelta(seconds=20))
    assert req.starts_at is not None
    created = AuditEvent.objects.get(object_type="request", object_id=str(req.pk), action="request.created")
    assert created.data["starts_at"] == req.starts_at.isoformat()


def test_windows_apply_to_extensions_too(people):
    srv = target()
    p = policy(srv, approval_mode=Policy.ApprovalMode.AUTO, approvals_required=0)
    req = services.request_create(requester=people["alice"], target=srv, duration_minutes=30)
    grant = Grant.objects.get(request=req)
    Policy.objects.filter(pk=p.pk).update(time_windows=never("refuse"))
    refused("outside_window", services.request_extend, grant=grant, requester=people["alice"], duration_minutes=30)


# -- end to end ----------------------------------------------------------------------------
def test_out_of_hours_refused_and_extra_stage_end_to_end(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN a policy that refuses outside its windows WHEN asked now (outside) THEN refused, nothing in AD;
    GIVEN another whose off-hours add an on-call stage WHEN the approver and the on-call approve THEN the
    worker makes the membership."""
    closed = make_target(mode="manual", time_windows=never("refuse"))
    alice = make_user("alice", groups=["admins"])
    with pytest.raises(RequestRefused) as info:
        services.request_create(requester=alice, target=closed)
    assert info.value.code == "outside_window"

    extra = make_target(mode="manual", time_windows=never("extra_stage", extra_stage=stage_default(
        name="on-call", approver_groups=["oncall"])))
    approver = make_user("appr", groups=["approvers"])
    oncall = make_user("oncall", groups=["oncall"])
    req = services.request_create(requester=alice, target=extra, duration_minutes=30)
    services.request_approve(request=req, approver=approver)
    assert not Grant.objects.filter(request=req).exists()
    services.request_approve(request=req, approver=oncall)
    wait_state(Grant.objects.get(request=req).id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, extra.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
