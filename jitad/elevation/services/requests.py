"""Requests and decisions: create, approve, deny, cancel, extend, expire."""
import re
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jitad.accounts.mfa import MfaStep
from jitad.accounts.mfa import mfa_step_audit as _mfa_data
from jitad.accounts.mfa import mfa_step_fields as _mfa_fields
from jitad.audit.services import audit_record
from jitad.humantime import DurationError, DurationTooLong, minutes_text, parse_minutes, when

from ..errors import RequestRefused
from ..models import AccessRequest, Approval, Grant, Policy, Target
from ..selectors.approvers import (
    approvals_counted,
    approver_groups_of,
    decided_for,
    delegation_not_running_for,
    deputy_for,
    open_stage_groups,
    open_stage_rule,
    stage_groups_for,
)
from ..selectors.eligibility import policy_for
from ..selectors.grants import ExtensionRoom, exclusive_holder, extension_room
from ..selectors.workflow import (
    WINDOW_AUTO,
    WINDOW_EXTRA_STAGE,
    WINDOW_REFUSE,
    network_allows,
    policy_stages,
    window_action,
    window_text,
)
from .grants import grant_apply_extension, grant_create_from, grants_revoke_for_user
from .notices import notice_request_decided, notice_request_pending, notice_stage_opened

TICKET_MAX = 64
JUSTIFICATION_MAX = 2000
START_SKEW = timedelta(minutes=1)  # a scheduled start this far in the past is "now" from a slow clock


def _actor(user) -> str:
    return user.get_username()


def _audit_request(req: AccessRequest, *, actor: str, action: str, before: str, reason: str = "", **data) -> None:
    audit_record(
        actor=actor,
        action=action,
        object_type="request",
        object_id=str(req.pk),
        before=before,
        after=req.state,
        reason=reason,
        data={"target": req.target.name, "requester": req.requester.get_username(), **data},
    )


def _check_text(policy: Policy, justification: str, ticket: str) -> tuple[str, str]:
    justification = (justification or "").strip()
    ticket = (ticket or "").strip()
    if len(justification) > JUSTIFICATION_MAX:
        raise RequestRefused("justification_too_long", f"The justification is limited to {JUSTIFICATION_MAX} characters.")
    if policy.require_justification and len(justification) < policy.min_justification_length:
        raise RequestRefused(
            "justification_required",
            f"Policy {policy.name} needs a justification of at least {policy.min_justification_length} characters.",
        )
    if len(ticket) > TICKET_MAX:
        raise RequestRefused("ticket_invalid", f"A ticket reference is at most {TICKET_MAX} characters.")
    if policy.require_ticket and not ticket:
        raise RequestRefused("ticket_required", f"Policy {policy.name} needs a ticket reference.")
    if ticket and policy.ticket_pattern and not re.fullmatch(policy.ticket_pattern, ticket):
        raise RequestRefused(
            "ticket_invalid", f"Ticket {ticket!r} does not match the format policy {policy.name} expects."
        )
    return justification, ticket


def _check_duration(policy: Policy, duration_minutes) -> int:
    if duration_minutes in (None, ""):
        return policy.default_duration_minutes
    try:
        minutes = parse_minutes(duration_minutes)
    except DurationTooLong:
        minutes = None  # beyond any policy: refused below, naming this policy's limit
    except DurationError as e:
        raise RequestRefused("duration_invalid", str(e)) from e
    if minutes is None or minutes > policy.max_duration_minutes:
        raise RequestRefused(
            "duration_too_long",
            f"Policy {policy.name} allows at most {policy.max_duration_minutes} minutes "
            f"({minutes_text(policy.max_duration_minutes)}) on this target.",
        )
    return minutes


def _check_network(policy: Policy, client_ip: str | None) -> None:
    if not network_allows(policy, client_ip):
        raise RequestRefused(
            "network_refused",
            f"Policy {policy.name} accepts requests only from {', '.join(policy.networks)}; "
            f"this one came from {client_ip or 'an unknown address'}.",
        )


def _check_start(policy: Policy, starts_at, now):
    """The scheduled start (None: at once), refused when in the past, too far ahead, or not allowed."""
    if starts_at is None:
        return None
    if policy.schedule_max_lead_minutes == 0:
        raise RequestRefused("schedule_not_allowed", f"Policy {policy.name} does not take requests for a later start.")
    if starts_at < now - START_SKEW:
        raise RequestRefused("start_in_past", f"The start {when(starts_at)} is in the past.")
    if starts_at > now + timedelta(minutes=policy.schedule_max_lead_minutes):
        raise RequestRefused(
            "start_too_far",
            f"Policy {policy.name} takes requests at most {minutes_text(policy.schedule_max_lead_minutes)} ahead.",
        )
    return starts_at


def _check_exclusive(target: Target, requester) -> None:
    """A one-at-a-time target in refuse mode is refused while someone else holds it."""
    if target.exclusive != Target.Exclusive.REFUSE:
        return
    holder = exclusive_holder(target=target, user=requester)
    if holder is not None:
        raise RequestRefused(
            "target_held",
            f"{target.name} allows one admin at a time and is held by {holder.user.get_username()} "
            f"until {when(holder.expires_at)}.",
        )


def _workflow(policy: Policy, at) -> tuple[str, list[dict]]:
    """(window action, stages) for access under ``policy`` starting at ``at``; refuses outside the windows."""
    action = window_action(policy, at) if policy.time_windows else ""
    if action == WINDOW_REFUSE:
        raise RequestRefused(
            "outside_window", f"Policy {policy.name} takes requests for access starting only within its time windows: "
                              f"{window_text(policy)}.",
        )
    if action == WINDOW_AUTO:
        return action, []
    stages = policy_stages(policy)
    if action == WINDOW_EXTRA_STAGE and (policy.time_windows or {}).get("extra_stage"):
        stages.append(dict(policy.time_windows["extra_stage"]))
    return action, stages


def _stage_fields(stages: list[dict], target: Target, now) -> dict:
    """The AccessRequest fields that snapshot ``stages`` with the first one open."""
    return {
        "stages": stages,
        "stage": 0,
        "stage_opened_at": now if stages else None,
        "stage_groups": stage_groups_for(stages=stages, index=0, target=target),
        "approvals_required": sum(int(stage.get("approvals_required", 1)) for stage in stages),
    }


def _workflow_audit(req: AccessRequest) -> dict:
    return {"stages": [{"name": st.get("name"), "approvals_required": st.get("approvals_required"),
                        "approver_groups": st.get("approver_groups")} for st in req.stages],
            "stage_groups": req.stage_groups, "window_action": req.window_action,
            "starts_at": req.starts_at.isoformat() if req.starts_at else None, "client_ip": req.client_ip}


def request_create(*, requester, target: Target, duration_minutes=None, justification: str = "", ticket: str = "",
                   mfa: MfaStep | None = None, starts_at=None, client_ip: str | None = None) -> AccessRequest:
    """Ask for ``target`` for ``duration_minutes``; auto-approved requests get their grant at once.

    ``mfa`` is the verified step the requester made it with, recorded on the row and in the audit.
    ``starts_at`` asks for a scheduled start (None: at once); ``client_ip`` is the address the
    request came from (the trusted proxy honoured), checked against the policy's networks.
    """
    if not target.enabled:
        raise RequestRefused("target_disabled", f"{target.name} is not open for requests.")
    policy = policy_for(user=requester, target=target)
    if policy is None:
        raise RequestRefused("not_eligible", f"No policy lets {requester.get_username()} request {target.name}.")
    _check_network(policy, client_ip)
    minutes = _check_duration(policy, duration_minutes)
    justification, ticket = _check_text(policy, justification, ticket)
    now = timezone.now()
    starts_at = _check_start(policy, starts_at, now)
    action, stages = _workflow(policy, starts_at or now)
    _check_exclusive(target, requester)
    auto = not stages
    with transaction.atomic():
        req = AccessRequest.objects.create(
            requester=requester,
            target=target,
            policy=policy,
            duration_minutes=minutes,
            justification=justification,
            ticket=ticket,
            pending_until=now + timedelta(minutes=policy.pending_timeout_minutes),
            window_action=action,
            starts_at=starts_at,
            client_ip=client_ip or None,
            **_stage_fields(stages, target, now),
            **_mfa_fields(mfa),
        )
        _audit_request(req, actor=_actor(requester), action="request.created", before="", reason=justification,
                       duration_minutes=minutes, ticket=ticket, policy=policy.name, **_workflow_audit(req),
                       **_mfa_data(mfa))
        if auto:  # the requester's own MFA step is the only one behind an automatic approval
            reason = (f"auto-approved by policy {policy.name}'s time window" if action == WINDOW_AUTO
                      and policy.approval_mode != Policy.ApprovalMode.AUTO else f"auto-approved by policy {policy.name}")
            _approve(req, actor="system:policy", reason=reason, mfa=mfa)
        else:
            notice_request_pending(request=req)
    return req


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


def _locked_pending(request_id: int) -> AccessRequest:
    req = AccessRequest.objects.select_for_update(of=("self",)).select_related("policy", "target", "requester").get(pk=request_id)
    if req.state != AccessRequest.State.PENDING:
        raise RequestRefused("not_pending", f"Request #{req.pk} is {req.state}, not pending.")
    return req


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


def request_cancel(*, request: AccessRequest, actor) -> AccessRequest:
    """The requester withdraws a pending request."""
    with transaction.atomic():
        req = _locked_pending(request.pk)
        if actor.pk != req.requester_id:
            raise RequestRefused("not_requester", "Only the requester may cancel a request.")
        req.state = AccessRequest.State.CANCELLED
        req.decided_at = timezone.now()
        req.save(update_fields=["state", "decided_at"])
        _audit_request(req, actor=_actor(actor), action="request.cancelled", before=AccessRequest.State.PENDING)
    return req


def _close_each(ids, *, state: str, actor: str, action: str, reason: str, now, tell_requester: bool) -> int:
    """Move each still-pending request of ``ids`` to ``state``, one locked row at a time."""
    count = 0
    for request_id in ids:
        with transaction.atomic():
            req = (AccessRequest.objects.select_for_update(of=("self",)).select_related("target", "requester", "policy")
                   .get(pk=request_id))
            if req.state != AccessRequest.State.PENDING:
                continue
            req.state = state
            req.decided_at = now
            req.save(update_fields=["state", "decided_at"])
            _audit_request(req, actor=actor, action=action, before=AccessRequest.State.PENDING, reason=reason)
            if tell_requester:
                notice_request_decided(request=req)
            count += 1
    return count


def requests_cancel_for_user(*, user, actor: str, reason: str) -> int:
    """Close every pending request of ``user`` (blocked or gone); returns how many."""
    ids = list(AccessRequest.objects.filter(requester=user, state=AccessRequest.State.PENDING).values_list("id", flat=True))
    return _close_each(ids, state=AccessRequest.State.CANCELLED, actor=actor, action="request.cancelled", reason=reason,
                       now=timezone.now(), tell_requester=False)


def holdings_end_for_blocked(sender, *, user, actor: str, reason: str, **kwargs) -> dict[str, int]:
    """Receiver of accounts' ``account_blocked``: the person's pending requests are cancelled,
    then their live grants revoked; returns how many of each."""
    cancelled = requests_cancel_for_user(user=user, actor=actor, reason=reason)
    return {"requests_cancelled": cancelled,
            "grants_revoked": grants_revoke_for_user(user=user, actor=actor, comment=reason)}


def _extension_minutes(grant: Grant, policy: Policy, duration_minutes, room: ExtensionRoom) -> int:
    """The minutes asked for (the policy's default, trimmed to the room, when none are), within the room."""
    if duration_minutes in (None, ""):
        return min(policy.default_duration_minutes, room.minutes)
    minutes = _check_duration(policy, duration_minutes)
    if minutes > room.minutes:
        raise RequestRefused(
            "extension_too_long",
            f"Grant #{grant.pk} can get at most {minutes_text(room.minutes)} more: policy {policy.name} lets a grant "
            f"last at most {minutes_text(policy.max_duration_minutes)} in all.",
        )
    return minutes


def request_extend(*, grant: Grant, requester, duration_minutes, justification: str = "", ticket: str = "",
                   mfa: MfaStep | None = None, client_ip: str | None = None) -> AccessRequest:
    """Ask for more time on a live grant: a new decision under the same policy, capped by it.

    The policy caps the number of extensions and the grant's whole length (``extension_room``).
    """
    if requester.pk != grant.user_id:
        raise RequestRefused("not_requester", "Only the holder of a grant may ask to extend it.")
    policy = policy_for(user=requester, target=grant.target)
    room = extension_room(grant=grant, policy=policy)
    if not room:
        raise RequestRefused(room.code, room.message)
    _check_network(policy, client_ip)
    minutes = _extension_minutes(grant, policy, duration_minutes, room)
    justification, ticket = _check_text(policy, justification, ticket or grant.request.ticket)
    now = timezone.now()
    action, stages = _workflow(policy, now)
    auto = not stages
    with transaction.atomic():
        # Re-check on the locked row: ``grant`` may be stale, or another extension racing.
        locked = Grant.objects.select_for_update().select_related("target").get(pk=grant.pk)
        room = extension_room(grant=locked, policy=policy)
        if not room:
            raise RequestRefused(room.code, room.message)
        if minutes > room.minutes:
            minutes = _extension_minutes(locked, policy, minutes, room)
        if AccessRequest.objects.filter(extends=grant, state=AccessRequest.State.PENDING).exists():
            raise RequestRefused("extension_pending", "An extension of this grant is already waiting for a decision.")
        req = AccessRequest.objects.create(
            kind=AccessRequest.Kind.EXTENSION,
            requester=requester,
            target=grant.target,
            policy=policy,
            extends=grant,
            duration_minutes=minutes,
            justification=justification,
            ticket=ticket,
            pending_until=now + timedelta(minutes=policy.pending_timeout_minutes),
            window_action=action,
            client_ip=client_ip or None,
            **_stage_fields(stages, grant.target, now),
            **_mfa_fields(mfa),
        )
        _audit_request(req, actor=_actor(requester), action="request.created", before="", reason=justification,
                       duration_minutes=minutes, extends=grant.pk, policy=policy.name, **_workflow_audit(req),
                       **_mfa_data(mfa))
        if auto:
            _approve(req, actor="system:policy", reason=f"auto-approved by policy {policy.name}", mfa=mfa)
        else:
            notice_request_pending(request=req)
    return req


def requests_expire_pending(*, now=None) -> int:
    """Close requests nobody decided in time, and tell their requesters; returns how many."""
    now = now or timezone.now()
    ids = list(
        AccessRequest.objects.filter(state=AccessRequest.State.PENDING, pending_until__lte=now).values_list("id", flat=True)[:1000]
    )
    return _close_each(ids, state=AccessRequest.State.EXPIRED_UNAPPROVED, actor="system:timeout",
                       action="request.expired_unapproved", reason="no decision within the policy's timeout", now=now,
                       tell_requester=True)
