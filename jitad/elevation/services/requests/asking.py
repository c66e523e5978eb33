"""Asking: a new request (its checks, its workflow and stages, auto-approval) and more time on a grant."""
import re
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jitad.accounts.mfa import MfaStep
from jitad.accounts.mfa import mfa_step_audit as _mfa_data
from jitad.accounts.mfa import mfa_step_fields as _mfa_fields
from jitad.humantime import DurationError, DurationTooLong, minutes_text, parse_minutes, when

from ...errors import RequestRefused
from ...models import AccessRequest, Grant, Policy, Target
from ...selectors.approvers import stage_groups_for
from ...selectors.eligibility import policy_for
from ...selectors.grants import ExtensionRoom, extension_room
from ...selectors.workflow import (
    WINDOW_AUTO,
    WINDOW_EXTRA_STAGE,
    WINDOW_REFUSE,
    network_allows,
    policy_stages,
    window_action,
    window_text,
)
from ..notices import notice_request_pending
from .common import JUSTIFICATION_MAX, START_SKEW, TICKET_MAX, _actor, _audit_request, _check_exclusive
from .deciding import _approve


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
        if not auto:
            # Before the audit event: writing it takes the audit chain's head row lock, held until
            # commit, so every other write of the chain waits only for this insert and the commit,
            # not for the approvers' lookup and the notice's rows as well.
            notice_request_pending(request=req)
        _audit_request(req, actor=_actor(requester), action="request.created", before="", reason=justification,
                       duration_minutes=minutes, ticket=ticket, policy=policy.name, **_workflow_audit(req),
                       **_mfa_data(mfa))
        if auto:  # the requester's own MFA step is the only one behind an automatic approval
            reason = (f"auto-approved by policy {policy.name}'s time window" if action == WINDOW_AUTO
                      and policy.approval_mode != Policy.ApprovalMode.AUTO else f"auto-approved by policy {policy.name}")
            _approve(req, actor="system:policy", reason=reason, mfa=mfa)
    return req


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
        if not auto:  # before the audit event, as for a new request: the chain's head lock waits for less
            notice_request_pending(request=req)
        _audit_request(req, actor=_actor(requester), action="request.created", before="", reason=justification,
                       duration_minutes=minutes, extends=grant.pk, policy=policy.name, **_workflow_audit(req),
                       **_mfa_data(mfa))
        if auto:
            _approve(req, actor="system:policy", reason=f"auto-approved by policy {policy.name}", mfa=mfa)
    return req
