"""Deciding: approvals and denials, stage by stage, by approvers and their deputies."""
from django.db import transaction
from django.utils import timezone

from jitad.accounts.mfa import MfaStep
from jitad.accounts.mfa import mfa_step_audit as _mfa_data
from jitad.accounts.mfa import mfa_step_fields as _mfa_fields
from jitad.audit.services import audit_record
from jitad.humantime import when

from ...errors import RequestRefused
from ...models import AccessRequest, Approval
from ...selectors.approvers import (
    approvals_counted,
    approver_groups_of,
    decided_for,
    delegation_not_running_for,
    deputy_for,
    open_stage_groups,
    open_stage_rule,
    stage_groups_for,
)
from ..grants import grant_apply_extension, grant_create_from
from ..notices import notice_request_decided, notice_stage_opened
from .common import JUSTIFICATION_MAX, _actor, _audit_request, _check_exclusive, _locked_pending


def _approve(req: AccessRequest, *, actor: str, reason: str, mfa: MfaStep | None = None) -> None:
    """Mark ``req`` approved and create (or extend) its grant; caller holds the transaction."""
    if req.kind == AccessRequest.Kind.NEW:
        _check_exclusive(req.target, req.requester)
    before = req.state
    req.state = AccessRequest.State.APPROVED
    req.decided_at = timezone.now()
    req.save(update_fields=["state", "decided_at"])
    _audit_request(req, actor=actor, action="request.approved", before=before, reason=reason, **_mfa_data(mfa))
    if req.kind == AccessRequest.Kind.EXTENSION:
        grant = grant_apply_extension(grant=req.extends, request=req, actor=actor)
    else:
        grant = grant_create_from(request=req, actor=actor)
    if req.approvals_required:  # decided by people: tell the requester (auto-approval is told by "active")
        notice_request_decided(request=req, grant=grant)


def _stage_label(req: AccessRequest) -> str:
    """"stage 2 of 2 (manager)", or "" for a request of one stage."""
    if len(req.stages) < 2 or req.stage >= len(req.stages):
        return ""
    return f"stage {req.stage + 1} of {len(req.stages)} ({req.stages[req.stage].get('name', '')})"


def _check_approver(req: AccessRequest, approver):
    """(groups, delegation) ``approver`` decides ``req``'s open stage as: in their own right (delegation None)
    or as a deputy; refuses the requester, non-approvers and a second decision by or for the same person."""
    if approver.pk == req.requester_id:
        raise RequestRefused("self_approval", "Nobody may decide their own request.")
    if not approver.is_active:
        raise RequestRefused("not_approver", f"{approver.get_username()} is not active in jitad.")
    decided = decided_for(request=req)
    if approver.pk in decided:
        own = req.approvals.filter(approver=approver).first()
        what = "approved" if own is not None and own.decision == Approval.Decision.APPROVE else "decided"
        raise RequestRefused("already_decided", f"You have already {what} this request"
                             + ("." if own is not None else " (your deputy did, for you)."))
    groups = approver_groups_of(user=approver, request=req)
    if groups:
        return groups, None
    deputy = deputy_for(user=approver, request=req)
    if deputy is not None:
        return deputy[1], deputy[0]
    _refuse_lapsed_deputy(req, approver)
    where = _stage_label(req)
    raise RequestRefused(
        "not_approver",
        f"{approver.get_username()} is not an approver for {req.target.name} under policy {req.policy.name}"
        + (f" at {where}" if where else "") + f" (it needs one of {', '.join(open_stage_groups(req)) or 'no group'}).",
    )


def _refuse_lapsed_deputy(req: AccessRequest, approver) -> None:
    """A deputy whose delegation does not run now is told so, rather than only that they are no approver."""
    d = delegation_not_running_for(user=approver, request=req)
    if d is None:
        return
    who = d.delegator.get_username()
    if d.revoked_at is not None:
        why = f"was ended by {d.revoked_by or 'someone'} at {when(d.revoked_at)}"
    elif d.ends_at <= timezone.now():
        why = f"ended at {when(d.ends_at)}"
    else:
        why = f"starts only at {when(d.starts_at)}"
    raise RequestRefused("delegation_not_running", f"Your delegation from {who} (#{d.pk}) {why}: you may not decide in "
                                             f"{who}'s place now.")


def _behalf(delegation) -> dict:
    if delegation is None:
        return {}
    return {"on_behalf_of": delegation.delegator.get_username(), "delegation": delegation.pk}


def _stage_passed(req: AccessRequest, *, actor: str, reason: str, mfa: MfaStep | None = None) -> None:
    """The open stage is satisfied: open the next one and tell its approvers, or approve after the last.
    Caller holds the transaction and the row."""
    if req.stages and len(req.stages) > 1:
        audit_record(actor=actor, action="request.stage_passed", object_type="request", object_id=str(req.pk),
                     before=req.state, after=req.state, reason=reason,
                     data={"stage": req.stage, "name": req.stages[req.stage].get("name", "")})
    if not req.stages or req.stage + 1 >= len(req.stages):
        if req.stages:
            req.stage = len(req.stages)
            req.stage_groups = []
            req.save(update_fields=["stage", "stage_groups"])
        _approve(req, actor=actor, reason=reason, mfa=mfa)
        return
    req.stage += 1
    req.stage_opened_at = timezone.now()
    req.escalated_at = None
    req.stage_groups = stage_groups_for(stages=req.stages, index=req.stage, target=req.target)
    req.save(update_fields=["stage", "stage_opened_at", "escalated_at", "stage_groups"])
    audit_record(actor=actor, action="request.stage_opened", object_type="request", object_id=str(req.pk),
                 before=req.state, after=req.state,
                 data={"stage": req.stage, "name": req.stages[req.stage].get("name", ""), "stage_groups": req.stage_groups})
    notice_stage_opened(request=req)


def _check_comment(comment: str) -> str:
    comment = (comment or "").strip()
    if len(comment) > JUSTIFICATION_MAX:
        raise RequestRefused("comment_too_long", f"A comment is limited to {JUSTIFICATION_MAX} characters.")
    return comment


def request_approve(*, request: AccessRequest, approver, comment: str = "", mfa: MfaStep | None = None) -> AccessRequest:
    """Record one approval of the open stage; the next stage opens once enough distinct approvers agree,
    and the request is approved after the last.

    ``approver`` decides in their own right (a group of the open stage) or as the deputy of someone
    who could (the approval is then in the delegator's name). With distinct groups on the stage an
    approval that cannot stand for a group not yet covered is refused, with the groups still needed,
    rather than recorded uselessly.
    """
    comment = _check_comment(comment)
    with transaction.atomic():
        req = _locked_pending(request.pk)
        groups, delegation = _check_approver(req, approver)
        if not req.requester.is_active:
            raise RequestRefused("requester_blocked", f"{req.requester.get_username()} is blocked in jitad: deny the request.")
        if not (req.policy.enabled and req.target.enabled):
            raise RequestRefused(
                "policy_disabled", f"Policy {req.policy.name} or target {req.target.name} is disabled: deny the request instead."
            )
        required, distinct = open_stage_rule(req)
        earlier = [a.approver_groups for a in req.approvals.filter(decision=Approval.Decision.APPROVE, stage=req.stage)]
        before = approvals_counted(earlier, distinct_groups=distinct)
        count = approvals_counted([*earlier, groups], distinct_groups=distinct)
        if count == before:
            covered = {g.lower() for sets in earlier for g in sets}
            needed = [g for g in open_stage_groups(req) if g.lower() not in covered]
            raise RequestRefused(
                "group_already_counted",
                f"Policy {req.policy.name} needs approvals from different groups; yours ({', '.join(groups)}) "
                f"is already counted. Still needed: one of {', '.join(needed) or 'no group left'}.",
            )
        Approval.objects.create(request=req, approver=approver, decision=Approval.Decision.APPROVE, comment=comment,
                                approver_groups=groups, stage=req.stage,
                                on_behalf_of=delegation.delegator if delegation else None, delegation=delegation,
                                **_mfa_fields(mfa))
        data = {"approvals": count, "required": req.approvals_required, "as": groups, **_behalf(delegation),
                **_mfa_data(mfa)}
        if req.stages:
            data.update(stage=req.stage, stage_name=req.stages[req.stage].get("name", ""), stage_required=required)
        audit_record(
            actor=_actor(approver), action="request.approval_recorded", object_type="request", object_id=str(req.pk),
            before=req.state, after=req.state, reason=comment, data=data,
        )
        if count >= required:
            _stage_passed(req, actor=_actor(approver), reason=comment, mfa=mfa)
    return req


def request_deny(*, request: AccessRequest, approver, comment: str, mfa: MfaStep | None = None) -> AccessRequest:
    """One deny ends the request; a comment is required."""
    comment = _check_comment(comment)
    if not comment:
        raise RequestRefused("comment_required", "A denial needs a comment for the requester.")
    with transaction.atomic():
        req = _locked_pending(request.pk)
        groups, delegation = _check_approver(req, approver)
        Approval.objects.create(
            request=req, approver=approver, decision=Approval.Decision.DENY, comment=comment, approver_groups=groups,
            stage=req.stage, on_behalf_of=delegation.delegator if delegation else None, delegation=delegation,
            **_mfa_fields(mfa),
        )
        req.state = AccessRequest.State.DENIED
        req.decided_at = timezone.now()
        req.save(update_fields=["state", "decided_at"])
        _audit_request(req, actor=_actor(approver), action="request.denied", before=AccessRequest.State.PENDING,
                       reason=comment, **{"as": groups}, **_behalf(delegation), **_mfa_data(mfa))
        notice_request_decided(request=req, by=approver, comment=comment)
    return req
