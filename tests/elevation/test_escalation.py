"""Escalation on silence: a stage nobody decides escalates, then times out (deny, or approve as if approved).

Time passes by moving ``stage_opened_at`` back in the database, never by sleeping. The service tests run
on the database; the last test lets the real worker run the escalation task.
"""
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Grant
from jitad.elevation.selectors import approvers
from jitad.elevation.selectors.workflow import stage_default
from jitad.engine import queue
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for

from .builders import policy, target, user

RequestState = AccessRequest.State
ESCALATION = {"after_minutes": 30, "groups": ["Directors"], "notify": ["secops"], "add_as_approvers": True}


def stages(escalation=None, timeout=None):
    return [stage_default(name="peer", approver_groups=["Peers"], escalation=escalation, timeout=timeout),
            stage_default(name="manager", approver_groups=["Managers"])]


def make(stages_value, name="esc"):
    srv = target(f"SRV-{name}")
    policy(srv, name=name, stages=stages_value, approvals_required=2, approver_groups=["Peers", "Managers", "Directors"])
    people = {n: user(f"{n}-{name}", *groups) for n, groups in
              {"alice": ("Ops",), "peer": ("Peers",), "manager": ("Managers",), "director": ("Directors",)}.items()}
    for person in people.values():
        person.email = f"{person.username}@jitad.test"
        person.save(update_fields=["email"])
    req = services.request_create(requester=people["alice"], target=srv)
    return req, people


def silence(req, minutes: int) -> None:
    """The open stage has waited ``minutes`` already."""
    AccessRequest.objects.filter(pk=req.pk).update(stage_opened_at=timezone.now() - timedelta(minutes=minutes))


def events(req, action: str):
    return list(AuditEvent.objects.filter(object_type="request", object_id=str(req.pk), action=action))


@pytest.mark.django_db
@override_settings(JITAD_NOTIFY_DESTINATIONS={"secops": ["json://127.0.0.1:9/secops"]})
def test_a_silent_stage_escalates_once_and_its_groups_may_then_decide():
    """GIVEN a stage escalating to Directors after 30 min (add_as_approvers)
    WHEN 29 min passed THEN nothing; WHEN 31 min passed THEN escalated_at is set, Directors join the stage's
    groups, they and the named destination are told, it is audited; a second run changes nothing."""
    req, people = make(stages(escalation=ESCALATION))
    director = people["director"]
    assert not approvers.can_decide(user=director, request=req)
    silence(req, 29)
    assert services.stages_escalate() == {"escalated": 0, "timed_out": 0}
    silence(req, 31)
    assert services.stages_escalate() == {"escalated": 1, "timed_out": 0}
    req.refresh_from_db()
    assert req.escalated_at is not None
    assert "Directors" in req.stage_groups
    assert approvers.requests_decidable_by(user=director).get() == req
    note = Notification.objects.get(event="request.escalated", object_id=str(req.pk))
    assert note.subject.startswith("Escalated:")
    told = set(note.deliveries.values_list("channel", "destination"))
    assert told == {("email", director.username), ("apprise", "JITAD_NOTIFY_SECOPS")}
    [event] = events(req, "request.escalated")
    assert event.actor == "system:escalation" and event.data["groups"] == ["Directors"]

    assert services.stages_escalate() == {"escalated": 0, "timed_out": 0}
    assert len(events(req, "request.escalated")) == 1
    services.request_approve(request=req, approver=director)
    req.refresh_from_db()
    assert req.stage == 1 and req.escalated_at is None and req.stage_groups == ["Managers"]


@pytest.mark.django_db
def test_escalation_without_add_as_approvers_only_tells():
    req, people = make(stages(escalation={**ESCALATION, "add_as_approvers": False, "notify": []}), name="tell")
    silence(req, 31)
    services.stages_escalate()
    req.refresh_from_db()
    assert req.escalated_at is not None and "Directors" not in req.stage_groups
    assert not approvers.can_decide(user=people["director"], request=req)


@pytest.mark.django_db
def test_a_stage_timeout_denies_and_tells_the_requester():
    req, people = make(stages(timeout={"after_minutes": 60, "action": "deny"}), name="deny")
    silence(req, 61)
    assert services.stages_escalate() == {"escalated": 0, "timed_out": 1}
    req.refresh_from_db()
    assert req.state == RequestState.DENIED
    [event] = events(req, "request.denied")
    assert event.actor == "system:escalation"
    note = Notification.objects.get(event="request.denied", object_id=str(req.pk))
    assert "escalation timeout" in note.body
    assert list(note.deliveries.values_list("destination", flat=True)) == [people["alice"].username]


@pytest.mark.django_db
def test_a_stage_timeout_that_approves_opens_the_next_stage_then_the_grant():
    req, people = make([stage_default(name="peer", approver_groups=["Peers"],
                                      timeout={"after_minutes": 60, "action": "approve"}),
                        stage_default(name="manager", approver_groups=["Managers"],
                                      timeout={"after_minutes": 60, "action": "approve"})], name="pass")
    silence(req, 61)
    assert services.stages_escalate()["timed_out"] == 1
    req.refresh_from_db()
    assert req.state == RequestState.PENDING and req.stage == 1
    assert len(events(req, "request.stage_auto_approved")) == 1
    silence(req, 61)
    services.stages_escalate()
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED
    assert Grant.objects.filter(request=req).exists()
    assert [e.actor for e in events(req, "request.approved")] == ["system:escalation"]


@pytest.mark.django_db
def test_decided_requests_are_left_alone():
    req, people = make(stages(timeout={"after_minutes": 60, "action": "deny"}), name="done")
    services.request_cancel(request=req, actor=people["alice"])
    silence(req, 61)
    assert services.stages_escalate() == {"escalated": 0, "timed_out": 0}


def test_the_worker_escalates_a_silent_stage(live, make_user, make_target):
    """GIVEN a pending request whose escalating stage opened 31 min ago (moved back in the DB)
    WHEN the real worker runs the escalation task THEN the stage escalates, audited, and the director
    may decide it; approving the rest goes on to a grant."""
    tgt = make_target(mode="manual", approvals=2, approver_groups=("peers", "managers", "directors"), stages=[
        stage_default(name="peer", approver_groups=["peers"],
                      escalation={"after_minutes": 30, "groups": ["directors"], "notify": [], "add_as_approvers": True}),
        stage_default(name="manager", approver_groups=["managers"])])
    alice = make_user("alice", groups=["admins"])
    director = make_user("dir", groups=["directors"])
    manager = make_user("mgr", groups=["managers"])
    req = services.request_create(requester=alice, target=tgt)
    silence(req, 31)
    assert queue.enqueue("jitad.elevation.escalate")
    wait_for(lambda: AccessRequest.objects.filter(pk=req.pk, escalated_at__isnull=False).exists(), timeout=30,
             message="the worker to escalate the stage")
    req.refresh_from_db()
    assert "directors" in req.stage_groups
    assert [e.actor for e in events(req, "request.escalated")] == ["system:escalation"]
    services.request_approve(request=req, approver=director)
    services.request_approve(request=req, approver=manager)
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED


@pytest.mark.django_db(transaction=True)
def test_two_workers_escalating_at_once_act_once_per_request():
    """GIVEN twenty requests whose stage is past its escalation and a timeout that denies
    WHEN two workers run the escalation at the same instant, twice each THEN every request escalated exactly
    once, then was denied exactly once (row locks, and the conditions read again on the locked row)."""
    import threading

    from django.db import connection

    reqs = [make(stages(escalation={**ESCALATION, "notify": []}, timeout={"after_minutes": 60, "action": "deny"}),
                 name=f"race{i}")[0] for i in range(20)]
    AccessRequest.objects.filter(pk__in=[r.pk for r in reqs]).update(
        stage_opened_at=timezone.now() - timedelta(minutes=31))
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            services.stages_escalate()
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)
        finally:
            connection.close()

    for _round in range(2):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        AccessRequest.objects.filter(pk__in=[r.pk for r in reqs], state=RequestState.PENDING).update(
            stage_opened_at=timezone.now() - timedelta(minutes=61))
    assert not errors, errors
    ids = [str(r.pk) for r in reqs]
    for action in ("request.escalated", "request.denied"):
        counts = [AuditEvent.objects.filter(object_type="request", object_id=i, action=action).count() for i in ids]
        assert counts == [1] * 20, (action, counts)
    assert Notification.objects.filter(event="request.escalated").count() == 20
    assert not AccessRequest.objects.filter(pk__in=[r.pk for r in reqs], state=RequestState.PENDING).exists()
