"""Requests and decisions: create, approve, deny, cancel, extend, expire."""
import re
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jitad.accounts.mfa import MfaStep
from jitad.accounts.mfa import mfa_step_audit as _mfa_data
from jitad.accounts.mfa import mfa_step_fields as _mfa_fields
from jitad.audit.services import audit_record
from jitad.humantime import DurationError, DurationTooLong, minutes_text, parse_minutes

from ..errors import RequestRefused
from ..models import AccessRequest, Approval, Grant, Policy, Target
from ..selectors.approvers import approvals_counted, approver_groups_for, approver_groups_of
from ..selectors.eligibility import policy_for
from ..selectors.grants import ExtensionRoom, extension_room
from .grants import grant_apply_extension, grant_create_from, grants_revoke_for_user
from .notices import notice_request_decided, notice_request_pending

TICKET_MAX = 64
JUSTIFICATION_MAX = 2000


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
    minutes = _check_duration(policy, duration_minutes)
    justification, ticket = _check_text(policy, justification, ticket)
    now = timezone.now()
    auto = policy.approval_mode == Policy.ApprovalMode.AUTO
    with transaction.atomic():
        req = AccessRequest.objects.create(
            requester=requester,
            target=target,
            policy=policy,
            duration_minutes=minutes,
            justification=justification,
            ticket=ticket,
            approvals_required=0 if auto else policy.approvals_required,
            pending_until=now + timedelta(minutes=policy.pending_timeout_minutes),
            **_mfa_fields(mfa),
        )
        _audit_request(req, actor=_actor(requester), action="request.created", before="", reason=justification,
                       duration_minutes=minutes, ticket=ticket, policy=policy.name, **_mfa_data(mfa))
        if auto:  # the requester's own MFA step is the only one behind an automatic approval
            _approve(req, actor="system:policy", reason=f"auto-approved by policy {policy.name}", mfa=mfa)
        else:
            notice_request_pending(request=req)
    return req


def _approve(req: AccessRequest, *, actor: str, reason: str, mfa: MfaStep | None = None) -> None:
    """Mark ``req`` approved and create (or extend) its grant; caller holds the transaction."""
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


def _check_approver(req: AccessRequest, approver) -> list[str]:
    """The approver groups ``approver`` decides ``req`` as; refuses the requester and non-approvers."""
    if approver.pk == req.requester_id:
        raise RequestRefused("self_approval", "Nobody may decide their own request.")
    groups = approver_groups_of(user=approver, request=req) if approver.is_active else []
    if not groups:
        raise RequestRefused(
            "not_approver", f"{approver.get_username()} is not an approver for {req.target.name} under policy {req.policy.name}."
        )
    return groups


def _check_comment(comment: str) -> str:
    comment = (comment or "").strip()
    if len(comment) > JUSTIFICATION_MAX:
        raise RequestRefused("comment_too_long", f"A comment is limited to {JUSTIFICATION_MAX} characters.")
    return comment


def request_approve(*, request: AccessRequest, approver, comment: str = "", mfa: MfaStep | None = None) -> AccessRequest:
    """Record one approval; the request is approved once enough distinct approvers agree.

    With ``Policy.distinct_approver_groups`` an approval that cannot stand for a group not
    yet covered is refused, with the groups still needed, rather than recorded uselessly.
    """
    comment = _check_comment(comment)
    with transaction.atomic():
        req = _locked_pending(request.pk)
        groups = _check_approver(req, approver)
        if not req.requester.is_active:
            raise RequestRefused("requester_blocked", f"{req.requester.get_username()} is blocked in jitad: deny the request.")
        if not (req.policy.enabled and req.target.enabled):
            raise RequestRefused(
                "policy_disabled", f"Policy {req.policy.name} or target {req.target.name} is disabled: deny the request instead."
            )
        if req.approvals.filter(approver=approver).exists():
            raise RequestRefused("already_decided", "You have already approved this request.")
        earlier = [a.approver_groups for a in req.approvals.filter(decision=Approval.Decision.APPROVE)]
        distinct = req.policy.distinct_approver_groups
        before = approvals_counted(earlier, distinct_groups=distinct)
        count = approvals_counted([*earlier, groups], distinct_groups=distinct)
        if count == before:
            covered = {g.lower() for sets in earlier for g in sets}
            needed = [g for g in approver_groups_for(policy=req.policy, target=req.target) if g.lower() not in covered]
            raise RequestRefused(
                "group_already_counted",
                f"Policy {req.policy.name} needs approvals from different groups; yours ({', '.join(groups)}) "
                f"is already counted. Still needed: one of {', '.join(needed) or 'no group left'}.",
            )
        Approval.objects.create(request=req, approver=approver, decision=Approval.Decision.APPROVE, comment=comment,
                                approver_groups=groups, **_mfa_fields(mfa))
        audit_record(
            actor=_actor(approver), action="request.approval_recorded", object_type="request", object_id=str(req.pk),
            before=req.state, after=req.state, reason=comment,
            data={"approvals": count, "required": req.approvals_required, "as": groups, **_mfa_data(mfa)},
        )
        if count >= req.approvals_required:
            _approve(req, actor=_actor(approver), reason=comment, mfa=mfa)
    return req


def request_deny(*, request: AccessRequest, approver, comment: str, mfa: MfaStep | None = None) -> AccessRequest:
    """One deny ends the request; a comment is required."""
    comment = _check_comment(comment)
    if not comment:
        raise RequestRefused("comment_required", "A denial needs a comment for the requester.")
    with transaction.atomic():
        req = _locked_pending(request.pk)
        groups = _check_approver(req, approver)
        Approval.objects.update_or_create(
            request=req, approver=approver,
            defaults={"decision": Approval.Decision.DENY, "comment": comment, "approver_groups": groups, **_mfa_fields(mfa)},
        )
        req.state = AccessRequest.State.DENIED
        req.decided_at = timezone.now()
        req.save(update_fields=["state", "decided_at"])
        _audit_request(req, actor=_actor(approver), action="request.denied", before=AccessRequest.State.PENDING,
                       reason=comment, **{"as": groups}, **_mfa_data(mfa))
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
                   mfa: MfaStep | None = None) -> AccessRequest:
    """Ask for more time on a live grant: a new decision under the same policy, capped by it.

    The policy caps the number of extensions and the grant's whole length (``extension_room``).
    """
    if requester.pk != grant.user_id:
        raise RequestRefused("not_requester", "Only the holder of a grant may ask to extend it.")
    policy = policy_for(user=requester, target=grant.target)
    room = extension_room(grant=grant, policy=policy)
    if not room:
        raise RequestRefused(room.code, room.message)
    minutes = _extension_minutes(grant, policy, duration_minutes, room)
    justification, ticket = _check_text(policy, justification, ticket or grant.request.ticket)
    auto = policy.approval_mode == Policy.ApprovalMode.AUTO
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
            approvals_required=0 if auto else policy.approvals_required,
            pending_until=timezone.now() + timedelta(minutes=policy.pending_timeout_minutes),
            **_mfa_fields(mfa),
        )
        _audit_request(req, actor=_actor(requester), action="request.created", before="", reason=justification,
                       duration_minutes=minutes, extends=grant.pk, policy=policy.name, **_mfa_data(mfa))
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
