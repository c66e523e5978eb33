"""Escalation on silence: a stage nobody decides in time escalates, then times out (docs/approvals.md).

A beat task runs ``stages_escalate`` every JITAD_ESCALATION_CHECK_INTERVAL seconds. Each due
request is handled in its own transaction on a row locked with ``skip_locked``, and the
conditions are read again on the locked row: two workers running at once never escalate,
deny or pass the same stage twice.
"""
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jitad.audit.services import audit_record

from ..errors import RequestRefused
from ..models import AccessRequest
from ..selectors.approvers import stage_groups_for
from .notices import notice_request_decided, notice_request_escalated
from .requests.common import _audit_request
from .requests.deciding import _stage_passed

log = logging.getLogger(__name__)
ACTOR = "system:escalation"
TIMEOUT_DENY = "deny"
TIMEOUT_APPROVE = "approve"


def _open_stage(req: AccessRequest) -> dict | None:
    if not req.stages or req.stage >= len(req.stages) or req.stage_opened_at is None:
        return None
    return req.stages[req.stage]


def _due(req: AccessRequest, now) -> str:
    """What is due on ``req``'s open stage at ``now``: "timeout", "escalate" or ""."""
    stage = _open_stage(req)
    if stage is None:
        return ""
    timeout = stage.get("timeout") or {}
    if timeout.get("after_minutes") is not None and req.stage_opened_at + timedelta(minutes=timeout["after_minutes"]) <= now:
        return "timeout"
    escalation = stage.get("escalation") or {}
    if (escalation.get("after_minutes") is not None and req.escalated_at is None
            and req.stage_opened_at + timedelta(minutes=escalation["after_minutes"]) <= now):
        return "escalate"
    return ""


def _escalate(req: AccessRequest, now) -> None:
    stage = req.stages[req.stage]
    escalation = stage["escalation"]
    req.escalated_at = now
    fields = ["escalated_at"]
    if escalation.get("add_as_approvers"):
        req.stage_groups = stage_groups_for(stages=req.stages, index=req.stage, target=req.target, escalated=True)
        fields.append("stage_groups")
    req.save(update_fields=fields)
    audit_record(actor=ACTOR, action="request.escalated", object_type="request", object_id=str(req.pk),
                 before=req.state, after=req.state,
                 reason=f"no decision within {escalation['after_minutes']} minutes",
                 data={"stage": req.stage, "name": stage.get("name", ""), "groups": escalation.get("groups", []),
                       "notify": escalation.get("notify", []), "add_as_approvers": bool(escalation.get("add_as_approvers")),
                       "stage_groups": req.stage_groups})
    notice_request_escalated(request=req, escalation=escalation)


def _time_out(req: AccessRequest, now) -> None:
    stage = req.stages[req.stage]
    timeout = stage["timeout"]
    name = stage.get("name", "")
    reason = f"stage {req.stage + 1} ({name}) undecided for {timeout['after_minutes']} minutes"
    if timeout.get("action") == TIMEOUT_APPROVE:
        audit_record(actor=ACTOR, action="request.stage_auto_approved", object_type="request", object_id=str(req.pk),
                     before=req.state, after=req.state, reason=reason, data={"stage": req.stage, "name": name})
        _stage_passed(req, actor=ACTOR, reason=f"{reason}: approved by the policy's timeout")
        return
    req.state = AccessRequest.State.DENIED
    req.decided_at = now
    req.save(update_fields=["state", "decided_at"])
    _audit_request(req, actor=ACTOR, action="request.denied", before=AccessRequest.State.PENDING,
                   reason=f"{reason}: denied by the policy's timeout", stage=req.stage)
    notice_request_decided(request=req, by_name="jitad (escalation timeout)",
                           comment=f"nobody decided {name or 'the request'} within {timeout['after_minutes']} minutes")


def stage_check(*, request_id: int, now=None) -> str:
    """Escalate or time out one request's open stage when due; returns what was done ("" for nothing)."""
    now = now or timezone.now()
    with transaction.atomic():
        req = (AccessRequest.objects.select_for_update(skip_locked=True, of=("self",))
               .select_related("policy", "target", "requester")
               .filter(pk=request_id, state=AccessRequest.State.PENDING).first())
        if req is None:
            return ""  # decided, gone, or another worker holds it now
        due = _due(req, now)
        if due == "timeout":
            _time_out(req, now)
        elif due == "escalate":
            _escalate(req, now)
    return due


def stages_escalate(*, now=None) -> dict:
    """Escalate every open stage left undecided past its escalation time, and end (deny or pass) those
    past their timeout; returns how many of each."""
    now = now or timezone.now()
    candidates = (AccessRequest.objects.filter(state=AccessRequest.State.PENDING, stage_opened_at__isnull=False)
                  .exclude(stages=[]).only("id", "stages", "stage", "stage_opened_at", "escalated_at").order_by("id"))
    done = {"escalated": 0, "timed_out": 0}
    for req in candidates.iterator(chunk_size=500):
        if not _due(req, now):
            continue
        try:
            outcome = stage_check(request_id=req.pk, now=now)
        except RequestRefused as e:  # a stage passed on silence, but the grant cannot be made now (target held)
            log.warning("request #%s: %s", req.pk, e)
            continue
        if outcome == "escalate":
            done["escalated"] += 1
        elif outcome == "timeout":
            done["timed_out"] += 1
    return done
