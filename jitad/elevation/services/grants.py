"""Grants: the public entry points (create, extend, release, revoke) and where each phase lives.

The rules the grant modules keep (ARCHITECTURE.md):

* The database is the source of truth. Work on a grant is *claimed* in a short
  transaction (state + ``claim_token`` + ``lease_until``), the token travels in the task
  message, and the task swaps it for its own before acting, so a duplicated message
  finds nothing to do and a lost one is re-claimed by the sweeper when the lease lapses.
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
from ..models import AccessRequest, Grant
from ..selectors.approvers import can_revoke
from ..selectors.grants import grant_end_limit
from .grant_apply import grant_apply_execute, grant_refresh_ttl_execute
from .grant_failures import failed_conditions_resolve
from .grant_revoke import grants_revoke_execute
from .grant_sweep import revocations_sweep_here, sweep
from .grant_work import _enqueue_apply, _enqueue_revoke, _entry

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
    """Create the grant for an approved request and queue its application (caller's transaction)."""
    now = timezone.now()
    token = uuid.uuid4()
    grant = Grant.objects.create(
        request=request,
        user=request.requester,
        target=request.target,
        group_dn=request.target.group_dn,
        created_at=now,  # the policy's longest grant counts from here (extensions.grant_end_limit)
        expires_at=now + timedelta(minutes=request.duration_minutes),
        state=GrantState.GRANTING,
        claim_token=token,
        lease_until=claims.lease_until(now),
    )
    audit_record_many(
        [
            _entry(grant, actor=actor, action="grant.created", before="", after=GrantState.APPROVED,
                   expires_at=grant.expires_at.isoformat()),
            _entry(grant, actor="system:engine", action="grant.granting", before=GrantState.APPROVED, after=GrantState.GRANTING),
        ]
    )
    transaction.on_commit(lambda: _enqueue_apply(grant.id, token))
    return grant


def grant_apply_extension(*, grant: Grant, request: AccessRequest, actor: str) -> Grant:
    """Push a live grant's expiry out by the approved extension (caller's transaction)."""
    g = Grant.objects.select_for_update(of=("self",)).select_related("user", "target").get(pk=grant.pk)
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
    live = Grant.objects.filter(user=user, state__in=Grant.LIVE_STATES, revoke_requested_at__isnull=True)
    count = 0
    for grant in live:
        try:
            _request_revocation(grant, actor=actor, reason=Grant.RevokeReason.ADMIN, comment=comment)
            count += 1
        except RequestRefused:  # revoked meanwhile
            pass
    return count
