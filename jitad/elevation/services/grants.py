"""Grants: the public entry points (create, extend, release, revoke) and where each phase lives.

The rules the grant modules keep (ARCHITECTURE.md):

* The database is the source of truth. Work on a grant is *claimed* in a short
  transaction (state + ``claim_token`` + ``lease_until``), the token travels in the task
  message, and the task swaps it for its own before acting, so a duplicated message
  finds nothing to do (a removal keeps its group's own token: its work is idempotent, and
  only one execution records it) and a lost one is re-claimed by the sweeper when the lease
  lapses.
* No network call inside a transaction: claim and commit, call AD, then commit the
  outcome, conditional on still holding the claim.
* Overlapping grants never cancel each other: a membership is removed only when no
  other live grant of the same user in the same group remains, and re-asserted if one
  appeared while we were removing it.
* Failures are bounded and loud: exponential backoff with jitter on transient errors,
  then ``grant_failed`` / ``revoke_failed`` with an alert, and the sweeper keeps going.

The phases: ``grant_apply`` (add, verify, activate, refresh the TTL), ``grant_revoke``
(remove and mark revoked), ``grant_failures`` (failed attempts and their alerts),
``grant_sweep`` (claim what is due), ``grant_work`` (what they share). Their public
functions are importable from here too.
"""
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jitad.audit.services import audit_record_many
from jitad.engine import claims, queue

from ..errors import RequestRefused
from ..models import AccessRequest, Grant, Policy, Target
from ..selectors.approvers import can_revoke
from ..selectors.grants import exclusive_holder, grant_end_limit
from .grant_apply import grant_apply_execute, grant_refresh_ttl_execute
from .grant_ephemeral import ephemeral_plan
from .grant_failures import failed_conditions_resolve
from .grant_revoke import grants_revoke_execute
from .grant_schedule import grant_end_unstarted, grant_wait_record
from .grant_sweep import revocations_sweep_here, sweep
from .grant_work import _enqueue_apply, _enqueue_revoke, _entry
from .notices_schedule import notice_grant_scheduled

__all__ = [
    "failed_conditions_resolve",
    "grant_apply_execute",
    "grant_apply_extension",
    "grant_create_from",
    "grant_refresh_ttl_execute",
    "grant_release",
    "grant_revoke",
    "grants_revoke_execute",
    "grants_revoke_for_user",
    "revocations_sweep_here",
    "sweep",
]
GrantState = Grant.State


def grant_create_from(*, request: AccessRequest, actor: str) -> Grant:
    """Create the grant for an approved request and queue its application (caller's transaction).

    A request with a start still ahead gets a ``scheduled`` grant, started by the sweep when its
    time comes. On a target that allows one admin at a time (``Target.exclusive``) held by someone
    else, the grant is ``scheduled`` from now and waits its turn (a target that refuses a second
    request, taken between the request and its approval, is waited for too). The target's row is
    locked while that is decided, so two grants never both start on it.
    """
    now = timezone.now()
    target = request.target
    if target.exclusive:
        target = Target.objects.select_for_update().get(pk=target.pk)
    minutes = request.duration_minutes
    starts = request.starts_at
    fixed = starts is not None and request.policy.schedule_clock == Policy.ScheduleClock.SCHEDULED_START
    if starts is not None and starts > now:
        state, starts_at, expires_at = GrantState.SCHEDULED, starts, starts + timedelta(minutes=minutes)
    elif fixed:  # approved after its start: it still ends when it would have
        state, starts_at, expires_at = GrantState.GRANTING, starts, starts + timedelta(minutes=minutes)
    else:
        state, starts_at, expires_at = GrantState.GRANTING, (now if starts else None), now + timedelta(minutes=minutes)
    ended = state == GrantState.GRANTING and expires_at <= now
    holder = None
    if state == GrantState.GRANTING and not ended and target.exclusive:
        holder = exclusive_holder(target=target, user=request.requester)
        if holder is not None:
            state, starts_at = GrantState.SCHEDULED, now
    token = uuid.uuid4() if state == GrantState.GRANTING and not ended else None  # the apply's claim
    account = ephemeral_plan(target=request.target, policy=request.policy, username=request.requester.get_username())
    grant = Grant.objects.create(
        request=request,
        user=request.requester,
        target=request.target,
        group_dn=request.target.group_dn,
        created_at=now,  # the policy's longest grant counts from here, or from starts_at (grant_end_limit)
        starts_at=starts_at,
        expires_at=expires_at,
        state=GrantState.SCHEDULED if ended else state,
        claim_token=token,
        lease_until=claims.lease_until(now) if token else None,
        **account,
    )
    entries = [_entry(grant, actor=actor, action="grant.created", before="", after=GrantState.APPROVED,
                      expires_at=grant.expires_at.isoformat(),
                      **({"ephemeral_account": grant.account_sam} if account else {}),
                      **({"starts_at": starts_at.isoformat()} if starts_at else {}))]
    if ended:  # approved after its whole window: nothing to add, nothing to remove
        audit_record_many(entries)
        grant_end_unstarted([grant], actor=actor, now=now)
    elif state == GrantState.SCHEDULED:
        entries.append(_entry(grant, actor=actor, action="grant.scheduled", before=GrantState.APPROVED,
                              after=GrantState.SCHEDULED, starts_at=starts_at.isoformat()))
        audit_record_many(entries)
        if holder is None:  # its start is ahead
            notice_grant_scheduled(grant=grant)
        else:  # waits for the holder: audited with who holds it and until when
            grant_wait_record(grant, holder, actor=actor)
    else:
        entries.append(_entry(grant, actor="system:engine", action="grant.granting", before=GrantState.APPROVED,
                              after=GrantState.GRANTING))
        audit_record_many(entries)
        transaction.on_commit(lambda: _enqueue_apply(grant.id, token))
    return grant


def grant_apply_extension(*, grant: Grant, request: AccessRequest, actor: str) -> Grant:
    """Push a live grant's expiry out by the approved extension (caller's transaction)."""
    g = Grant.objects.select_for_update(of=("self",)).select_related("user", "target").get(pk=grant.pk)
    if g.state == GrantState.SCHEDULED and not g.revoke_requested_at:
        raise RequestRefused("not_started", f"Grant #{g.pk} has not started yet: ask for more time once it is active.")
    if g.state not in (GrantState.APPROVED, GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED) or g.revoke_requested_at:
        raise RequestRefused("not_extendable", f"Grant #{g.pk} is {g.state} and cannot be extended.")
    now = timezone.now()
    old = g.expires_at
    # Never past the policy's longest grant, whatever was asked or approved meanwhile.
    limit = grant_end_limit(grant=g, policy=request.policy)
    asked = max(g.expires_at, now) + timedelta(minutes=request.duration_minutes)
    g.expires_at = max(g.expires_at, min(limit, asked))
    g.extensions += 1
    g.expiry_warned_at = None  # a new end: warn again before it
    g.save(update_fields=["expires_at", "extensions", "expiry_warned_at"])
    audit_record_many(
        [_entry(g, actor=actor, action="grant.extended", before=g.state, after=g.state, reason=request.justification,
                old_expires_at=old.isoformat(), expires_at=g.expires_at.isoformat(), request=request.pk,
                capped_by_policy=asked > limit)]
    )
    if g.state in (GrantState.ACTIVE, GrantState.UNVERIFIED):
        queue.enqueue_on_commit("jitad.elevation.grant_refresh_ttl", g.id)
    return g


def _request_revocation(grant: Grant, *, actor: str, reason: str, comment: str = "") -> Grant:
    now = timezone.now()
    with transaction.atomic():
        g = Grant.objects.select_for_update(of=("self",)).select_related("user", "target").get(pk=grant.pk)
        if g.state in (GrantState.REVOKING, GrantState.REVOKE_FAILED, GrantState.REVOKED) or g.revoke_requested_at:
            raise RequestRefused("already_revoked", f"Grant #{g.pk} is already {g.state}.")
        g.revoke_requested_at = now
        g.revoke_requested_by = actor
        g.revoke_reason = reason
        g.revoke_comment = comment
        fields = ["revoke_requested_at", "revoke_requested_by", "revoke_reason", "revoke_comment"]
        if g.state == GrantState.SCHEDULED:  # nothing in AD yet: it ends here and now
            g.save(update_fields=fields)
            grant_end_unstarted([g], actor=actor, now=now)
            return g
        if g.state in (GrantState.GRANTING, GrantState.UNVERIFIED, GrantState.GRANT_FAILED) and g.lease_until and g.lease_until > now:
            # An apply is in flight; stealing its claim could let its add land after our
            # removal. The sweeper takes the grant as soon as the apply lets go.
            g.save(update_fields=fields)
            audit_record_many([_entry(g, actor=actor, action="grant.revoke_requested", before=g.state, after=g.state,
                                      reason=comment or reason)])
            return g
        before = g.state
        token = uuid.uuid4()
        g.state, g.claim_token, g.lease_until, g.attempts, g.next_attempt_at = GrantState.REVOKING, token, claims.lease_until(now), 0, None
        g.save(update_fields=fields + ["state", "claim_token", "lease_until", "attempts", "next_attempt_at"])
        audit_record_many([_entry(g, actor=actor, action="grant.revoking", before=before, after=GrantState.REVOKING,
                                  reason=comment or reason)])
        transaction.on_commit(lambda: _enqueue_revoke([g.id], token))
    return g


def grant_release(*, grant: Grant, actor) -> Grant:
    """The holder gives the access back early."""
    if actor.pk != grant.user_id:
        raise RequestRefused("not_holder", "Only the holder may release a grant.")
    return _request_revocation(grant, actor=actor.get_username(), reason=Grant.RevokeReason.RELEASED)


def grant_revoke(*, grant: Grant, actor, reason: str) -> Grant:
    """An administrator or an approver for the grant ends it now; the reason is recorded."""
    reason = (reason or "").strip()
    if not reason:
        raise RequestRefused("reason_required", "Revoking someone's access needs a reason.")
    if len(reason) > 2000:
        raise RequestRefused("reason_too_long", "A reason is limited to 2000 characters.")
    if not can_revoke(user=actor, grant=grant):
        raise RequestRefused("not_allowed", f"{actor.get_username()} may not revoke grants of {grant.target.name}.")
    return _request_revocation(grant, actor=actor.get_username(), reason=Grant.RevokeReason.ADMIN, comment=reason)


def grants_revoke_for_user(*, user, actor: str, comment: str) -> int:
    """End every live grant of ``user`` now (the account is gone or disabled); returns how many."""
    live = Grant.objects.filter(user=user, state__in=(*Grant.LIVE_STATES, GrantState.SCHEDULED),
                                revoke_requested_at__isnull=True)
    count = 0
    for grant in live:
        try:
            _request_revocation(grant, actor=actor, reason=Grant.RevokeReason.ADMIN, comment=comment)
            count += 1
        except RequestRefused:  # revoked meanwhile
            pass
    return count
