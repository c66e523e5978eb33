"""Grants: create, claim, apply to AD, revoke from AD, release, admin revoke, extend.

The rules this module keeps (ARCHITECTURE.md):

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
"""
import logging
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from jitad import directory, hosts
from jitad.accounts.models import DirectoryAccount
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.engine import claims, keeper, queue
from jitad.engine.retry import backoff_seconds
from jitad.engine.services import pulse_mark
from jitad.humantime import when
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise, condition_raise, condition_resolve, conditions_open

from ..errors import RequestRefused
from ..models import AccessRequest, Grant
from . import host_checks
from .approvers import can_revoke
from .extensions import grant_end_limit
from .notices import notice_grant_active, notice_grant_not_applied, notices_grants_revoked
from .unmanaged import group_not_managed_raise, not_managed_conditions_resolve
from .targets import group_nested_into_protected

log = logging.getLogger(__name__)
GrantState = Grant.State


# -- helpers ---------------------------------------------------------------------------
def _lease(now=None):
    return keeper.lease_until(now)


def _entry(grant: Grant, *, actor: str, action: str, before: str, after: str, reason: str = "", **data) -> AuditEntry:
    return AuditEntry(
        actor=actor,
        action=action,
        object_type="grant",
        object_id=str(grant.pk),
        before=before,
        after=after,
        reason=reason,
        data={"user": grant.user.get_username(), "target": grant.target.name, "group": grant.group_dn, **data},
    )


def _release(grant_ids: list[int], token: uuid.UUID) -> None:
    """Hand claimed grants back to the sweep at once (their message could not be sent)."""
    claims.release(Grant, grant_ids, token)


def _enqueue_apply(grant_id: int, token: uuid.UUID) -> None:
    queue.enqueue("jitad.elevation.grant_apply", grant_id, str(token),
                  on_failure=lambda: _release([grant_id], token))


def _enqueue_revoke(grant_ids: list[int], token: uuid.UUID) -> None:
    queue.enqueue("jitad.elevation.grants_revoke", list(grant_ids), str(token),
                  on_failure=lambda: _release(grant_ids, token))


def _enqueue_revoke_checks(grants: list[Grant], token: uuid.UUID) -> None:
    """One message per server, so one slow server never holds up the others' checks."""
    by_target: dict[int, list[int]] = defaultdict(list)
    for g in grants:
        by_target[g.target_id].append(g.id)
    for ids in by_target.values():
        queue.enqueue("jitad.elevation.grants_check_revoked", ids, str(token), on_failure=lambda ids=ids: _release(ids, token))


@contextmanager
def _taken(grant_ids, token):
    """Swap the claim a message carries for this execution's own (a duplicate gets nothing), and
    keep renewing it while the block runs: a dead worker's claim lapses within one lease."""
    mine, grants = claims.take(Grant.objects.select_related("user", "target"), grant_ids, token)
    if not grants:
        yield grants, mine
        return
    with keeper.held(Grant, mine):
        yield grants, mine


# -- creation and requests to end ------------------------------------------------------
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
        lease_until=_lease(now),
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
        g.state, g.claim_token, g.lease_until, g.attempts, g.next_attempt_at = GrantState.REVOKING, token, _lease(now), 0, None
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


# -- failures --------------------------------------------------------------------------
def _unexpected(e: Exception) -> directory.DirectoryError:
    """Wrap a non-directory error as a permanent failure, so it is recorded and alerted."""
    wrapped = directory.DirectoryError(f"unexpected {type(e).__name__}: {e}")
    wrapped.__cause__ = e
    return wrapped


def _attempt_failed(grants: list[Grant], token: uuid.UUID, error: directory.DirectoryError, *, phase: str) -> None:
    """Record a failed attempt on grants we hold; schedule the retry or mark failed and alert."""
    now = timezone.now()
    message = f"{type(error).__name__}: {error}"[:2000]
    entries, alerts = [], []
    with transaction.atomic():
        for g in Grant.objects.select_for_update(of=("self",)).select_related("user", "target").filter(
            id__in=[g.id for g in grants], claim_token=token
        ):
            before = g.state
            g.attempts += 1
            g.last_error = message
            exhausted = not error.transient or g.attempts >= settings.JITAD_RETRY_MAX_ATTEMPTS
            if phase == "grant" and exhausted:
                g.state, g.retryable = GrantState.GRANT_FAILED, error.transient
            elif phase == "revoke" and exhausted:
                g.state = GrantState.REVOKE_FAILED
            g.next_attempt_at = now + timedelta(seconds=backoff_seconds(g.attempts, failed=exhausted))
            g.claim_token = g.lease_until = None
            g.save(update_fields=["attempts", "last_error", "state", "retryable", "next_attempt_at", "claim_token", "lease_until"])
            action = f"grant.{g.state}" if g.state != before else "grant.attempt_failed"
            entries.append(_entry(g, actor="system:engine", action=action, before=before, after=g.state,
                                  reason=message, attempts=g.attempts, transient=error.transient))
            if g.state != before:
                alerts.append(g)
        audit_record_many(entries)
        if isinstance(error, directory.DirectoryNotManaged):
            # A group jitad does not own: one condition per group, raised on every refusal
            # (it only counts while open), instead of a wave alert per batch of grants.
            group_not_managed_raise(group_dn=error.dn, error=error, grant_ids=[g.id for g in grants], by="engine")
        elif alerts:
            _alert_failed_wave(alerts, phase=phase, error=error, message=message)
        if phase == "grant":
            for g in alerts:
                notice_grant_not_applied(grant=g)
    log.warning("%s attempt failed for %d grant(s): %s", phase, len(grants), message)


FAILED_LISTED = 20


def _alert_failed_wave(grants: list[Grant], *, phase: str, error: directory.DirectoryError, message: str) -> None:
    """One alert per cause for a batch that ran out of attempts, not one per grant.

    The alert opens the condition ``grant.<state>:<error class>``; further batches failing
    for the same cause while it is open only count (and remind now and then). It resolves
    when no grant is left in that failed state (``failed_conditions_resolve``).
    """
    state = grants[0].state
    verb = "add" if phase == "grant" else "remove"
    cause = type(error).__name__
    shown = grants[:FAILED_LISTED]
    lines = [f"  #{g.pk} {g.user.get_username()} on {g.target.name} ({g.group_dn})" for g in shown]
    if len(grants) > len(shown):
        lines.append(f"  ... and {len(grants) - len(shown)} more (admin → Grants, state {state})")
    first = grants[0]
    what = (f"{first.user.get_username()} {'to' if verb == 'add' else 'from'} {first.target.name} (grant #{first.pk})"
            if len(grants) == 1 else f"{len(grants)} grants")
    condition_raise(
        key=f"grant.{state}:{cause}",
        event=f"grant.{state}",
        severity=Notification.Severity.CRITICAL,
        subject=f"jitad could not {verb} {what}: {cause}",
        body=(
            f"{len(grants)} grant(s) are {state} after their last attempt. Last error: {message}\n"
            + "\n".join(lines) + "\n"
            + ("jitad keeps retrying the removals and says when every one is done; check the domain controllers "
               "and jitad's bind account." if phase == "revoke" else "The requesters do not have the access.")
        ),
        link=_admin_link(first) if len(grants) == 1 else _grants_link(state),
    )


def failed_conditions_resolve() -> None:
    """Resolve the failure alerts of a state no grant is in any more (one "Resolved" per cause)."""
    not_managed_conditions_resolve()
    for state, event, what, done in (
        (GrantState.REVOKE_FAILED, "grant.revoke_recovered", "revocations failed",
         "Every failed revocation is done: the memberships are verified gone."),
        (GrantState.GRANT_FAILED, "grant.recovered", "grants failed", "No grant is left failed (applied, or ended)."),
    ):
        open_ = conditions_open(prefix=f"grant.{state}:")
        if open_ and not Grant.objects.filter(state=state).exists():
            for c in open_:
                cause = c.key.split(":", 1)[1]
                condition_resolve(key=c.key, event=event, subject=f"{what} with {cause}",
                                  body=f"{done}\nFirst alerted: {c.subject}")


def _grants_link(state: str) -> str:
    return settings.JITAD_BASE_URL + reverse("admin:elevation_grant_changelist") + f"?state__exact={state}"


# -- apply -----------------------------------------------------------------------------
def grant_apply_execute(*, grant_id: int, token) -> None:
    """Add the grant's user to its group in AD, verify (in AD, and on the server where checked), mark it active."""
    with _taken([grant_id], token) as (grants, mine):
        if grants:
            _apply(grants[0], mine)


def _apply(g: Grant, mine: uuid.UUID) -> None:
    if g.state not in (GrantState.GRANTING, GrantState.GRANT_FAILED, GrantState.UNVERIFIED):
        Grant.objects.filter(id=g.id, claim_token=mine).update(claim_token=None, lease_until=None)
        return
    facts = None
    try:
        with directory.session() as d:
            if not g.user_dn:
                user = _ad_account(d, g.user)
                if user.disabled:
                    raise directory.DirectoryRejected(f"the AD account {user.sam_account_name} is disabled")
                # Commit who this grant backs before touching the group, so the
                # reconciler never mistakes our add for an out-of-band one.
                Grant.objects.filter(id=g.id, claim_token=mine).update(user_dn=user.dn, user_guid=user.guid, user_sid=user.sid)
                g.user_dn, g.user_sid = user.dn, user.sid
            ttl = int((g.expires_at - timezone.now()).total_seconds())
            if ttl <= 0:
                Grant.objects.filter(id=g.id, claim_token=mine).update(claim_token=None, lease_until=None)
                return  # expired before it could be applied: the sweeper revokes it
            d.add_member(g.group_dn, g.user_dn, ttl_seconds=ttl, nested_into_protected=g.target.nested_into_protected)
            if g.target.host_checked:
                facts = {"group_sid": d.object_sid(g.group_dn), "user_in_group": d.is_member_nested(g.group_dn, g.user_dn)}
    except directory.DirectoryError as e:
        _attempt_failed([g], mine, e, phase="grant")
        return
    except Exception as e:  # a bug must be loud and bounded too, not a silent crash loop
        log.exception("grant %s: unexpected error while applying", g.id)
        _attempt_failed([g], mine, _unexpected(e), phase="grant")
        return
    verdict = None
    if facts is not None:  # the directory connection is closed: the host may take its deadline
        # The AD part may have used much of the lease: renew it to cover the server's deadline.
        if not Grant.objects.filter(id=g.id, claim_token=mine).update(lease_until=_lease() + _host_budget()):
            return  # the claim lapsed meanwhile; the current holder decides
        try:
            verdict = host_checks.grant_right_verdict(target=g.target, group_dn=g.group_dn, **facts)
        except Exception as e:  # a bug must end in a recorded, alerted state, never a silent loop
            log.exception("grant %s: unexpected error while verifying on the server", g.id)
            verdict = host_checks.Verdict(False, f"unexpected {type(e).__name__}: {e}", hosts.HostError(str(e)))
        if not verdict.ok:
            _verification_failed(g, mine, verdict)
            return
    _activate(g, mine, verdict)


def _activate(g: Grant, token: uuid.UUID, verdict: "host_checks.Verdict | None") -> None:
    now = timezone.now()
    with transaction.atomic():
        done = Grant.objects.filter(id=g.id, claim_token=token, state=g.state).update(
            state=GrantState.ACTIVE, activated_at=now, claim_token=None, lease_until=None, attempts=0,
            next_attempt_at=None, last_error="", unverified_since=None,
            host_verified_at=now if verdict else None, host_detail=verdict.detail if verdict else "",
        )
        if done:
            extra = {"host_check": verdict.detail} if verdict else {}
            audit_record_many([_entry(g, actor="system:engine", action="grant.active", before=g.state, after=GrantState.ACTIVE,
                                      expires_at=g.expires_at.isoformat(), **extra)])
            notice_grant_active(grant=g)
            if g.state == GrantState.UNVERIFIED:
                alert_raise(
                    event="grant.verified", severity=Notification.Severity.INFO,
                    subject=f"Resolved: {g.user.get_username()} is admin on {g.target.name} (grant #{g.pk})",
                    body=f"Grant #{g.pk} is now active: "
                         + (verdict.detail if verdict else "the target is no longer checked on a server."),
                    link=_admin_link(g), object_type="grant", object_id=g.pk,
                )
    if not done:
        log.warning("grant %s: claim lapsed while applying; the current holder decides", g.id)


def _host_budget() -> timedelta:
    """The longest one server check may take: its deadline plus closing the shell."""
    return timedelta(seconds=settings.JITAD_WINRM_DEADLINE + 5)


def _admin_link(g: Grant) -> str:
    return settings.JITAD_BASE_URL + reverse("admin:elevation_grant_change", args=[g.pk])


def _verification_failed(g: Grant, token: uuid.UUID, verdict: "host_checks.Verdict") -> None:
    """The AD membership is there but the server does not show the right: unverified, retried within a window."""
    now = timezone.now()
    with transaction.atomic():
        row = Grant.objects.select_for_update(of=("self",)).filter(id=g.id, claim_token=token).first()
        if row is None:
            return
        before = row.state
        since = row.unverified_since or now
        window_end = since + timedelta(minutes=settings.JITAD_HOST_VERIFY_WINDOW_MINUTES)
        row.attempts += 1
        retry = verdict.worth_retrying and now < window_end
        row.state, row.unverified_since, row.retryable = GrantState.UNVERIFIED, since, retry
        row.last_error = row.host_detail = verdict.detail[:2000]
        row.next_attempt_at = min(now + timedelta(seconds=backoff_seconds(row.attempts)), window_end) if retry else None
        row.claim_token = row.lease_until = None
        row.save(update_fields=["attempts", "state", "unverified_since", "retryable", "last_error", "host_detail",
                                "next_attempt_at", "claim_token", "lease_until"])
        entering = before != GrantState.UNVERIFIED
        action = "grant.unverified" if entering else ("grant.verify_failed" if retry else "grant.verify_gave_up")
        audit_record_many([_entry(row, actor="system:engine", action=action, before=before, after=GrantState.UNVERIFIED,
                                  reason=row.last_error, attempts=row.attempts, retrying=retry)])
        if entering or not retry:
            until = f"jitad re-checks until {when(window_end)}." if retry else (
                "jitad has stopped re-checking; fix the cause, then revoke and grant again.")
            alert_raise(
                event=action, severity=Notification.Severity.CRITICAL,
                subject=f"Not verified on {g.target.name}: {g.user.get_username()} (grant #{g.pk})",
                body=(f"Grant #{g.pk}: {g.user.get_username()} was added to {g.group_dn} in AD, but the server does not "
                      f"confirm the admin right. {row.last_error}\n{until}"),
                link=_admin_link(g), object_type="grant", object_id=g.pk,
            )
            if entering:
                notice_grant_not_applied(grant=row)
    log.warning("grant %s not verified on %s: %s", g.id, g.target.name, verdict.detail)


def grant_refresh_ttl_execute(*, grant_id: int) -> None:
    """After an extension, rewrite the member's PAM TTL (only where the forest has the feature)."""
    g = Grant.objects.filter(id=grant_id, state__in=[GrantState.ACTIVE, GrantState.UNVERIFIED]).first()
    if g is None or not g.user_dn:
        return
    ttl = int((g.expires_at - timezone.now()).total_seconds())
    try:
        with directory.session() as d:
            if ttl > 0 and d.pam_ttl_supported():
                d.add_member(g.group_dn, g.user_dn, ttl_seconds=ttl, nested_into_protected=g.target.nested_into_protected)
    except directory.DirectoryNotManaged as e:  # never retried: the group is not jitad's to change
        with transaction.atomic():
            audit_record_many([_entry(g, actor="system:engine", action="grant.ttl_refresh_refused", before=g.state,
                                      after=g.state, reason=str(e)[:2000])])
            group_not_managed_raise(group_dn=e.dn, error=e, grant_ids=[g.id], by="engine")


# -- revoke ----------------------------------------------------------------------------
def _live_holders(group_dn: str, user_ids, exclude_ids) -> set[int]:
    """Users who still hold a live grant in ``group_dn`` (other than the grants being revoked)."""
    return set(
        Grant.objects.filter(
            group_dn=group_dn,
            user_id__in=list(user_ids),
            state__in=[GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED],
            expires_at__gt=timezone.now(),
            revoke_requested_at__isnull=True,
        )
        .exclude(id__in=list(exclude_ids))
        .values_list("user_id", flat=True)
    )


def _ad_account(d: directory.Directory, user) -> directory.DirectoryUser:
    """The AD account behind ``user``: by the objectGUID its login linked, so a reused name
    can never stand in for a renamed account; by name only for users with no AD link."""
    guid = DirectoryAccount.objects.filter(user_id=user.pk).values_list("guid", flat=True).first()
    return d.find_user_by_guid(guid) if guid else d.find_user(user.get_username())


def _current_dn(d: directory.Directory, g: Grant, member_keys: set[str]) -> str | None:
    """The DN to remove for ``g``: as recorded, or as it is now if the account was renamed or moved."""
    if g.user_dn and directory.normalize_dn(g.user_dn) in member_keys:
        return g.user_dn
    try:
        if g.user_guid:
            return d.find_user_by_guid(g.user_guid).dn
        if not g.user_dn:
            return _ad_account(d, g.user).dn
    except directory.DirectoryNotFound:
        return None
    return g.user_dn


def _revoke_group(d: directory.Directory, group_dn: str, grants: list[Grant]) -> dict[int, bool]:
    """Remove the members these grants added (unless another live grant holds them); verify.

    Returns {grant id: True if its membership was removed, False if another grant kept it}.
    """
    ids = {g.id for g in grants}
    keep = _live_holders(group_dn, {g.user_id for g in grants}, ids)
    read = d.group_members(group_dn)  # its SID too: the seam refuses a well-known privileged group
    member_keys = {directory.normalize_dn(m) for m in read.members}
    to_remove: dict[str, list[Grant]] = defaultdict(list)
    outcome = {}
    for g in grants:
        if g.user_id in keep:
            outcome[g.id] = False
            continue
        dn = _current_dn(d, g, member_keys)
        outcome[g.id] = True
        if dn:
            to_remove[dn].append(g)
    d.remove_members(group_dn, list(to_remove), read=read)
    # A grant for one of these users may have started while we removed: put it back.
    raced = _live_holders(group_dn, {g.user_id for gs in to_remove.values() for g in gs}, ids)
    for dn, gs in to_remove.items():
        if any(g.user_id in raced for g in gs):
            d.add_member(group_dn, dn, nested_into_protected=group_nested_into_protected(group_dn))
            log.warning("re-added %s to %s for a grant that started during revocation", dn, group_dn)
    return outcome


def _mark_revoked(grants: list[Grant], token: uuid.UUID, outcome: dict[int, bool]) -> None:
    now = timezone.now()
    entries, recovered = [], []
    with transaction.atomic():
        held = {
            g.id: g.state
            for g in Grant.objects.select_for_update().filter(id__in=list(outcome), claim_token=token).only("id", "state")
        }
        for removed in (True, False):
            ids = [i for i, r in outcome.items() if r is removed and i in held]
            Grant.objects.filter(id__in=ids).update(
                state=GrantState.REVOKED, revoked_at=now, membership_removed=removed, claim_token=None, lease_until=None,
                next_attempt_at=None, last_error="", attempts=0,
            )
        # Where the server is checked over WinRM, the revocation is confirmed there too
        # (and sessions ended, if the policy says so) by a task of its own: a slow host
        # never delays the AD removal of the rest of the batch.
        checked = [g for g in grants if g.id in held and outcome[g.id] and g.target.host_checked]
        if checked:
            check_token = uuid.uuid4()
            Grant.objects.filter(id__in=[g.id for g in checked]).update(
                host_revoke_check=Grant.HostCheck.PENDING, claim_token=check_token, lease_until=_lease(now)
            )
            transaction.on_commit(lambda: _enqueue_revoke_checks(checked, check_token))
        for g in grants:
            if g.id not in held:
                continue
            entries.append(_entry(g, actor="system:engine", action="grant.revoked", before=held[g.id], after=GrantState.REVOKED,
                                  reason=g.revoke_reason or Grant.RevokeReason.EXPIRED,
                                  membership_removed=outcome[g.id],
                                  lateness_ms=int((now - g.expires_at).total_seconds() * 1000)))
            if held[g.id] == GrantState.REVOKE_FAILED:
                recovered.append(g)
        audit_record_many(entries)
        notices_grants_revoked(grants=[g for g in grants if g.id in held], outcome=outcome)
    if recovered:
        failed_conditions_resolve()


def grants_revoke_execute(*, grant_ids: list[int], token) -> None:
    """Remove the memberships of the claimed grants, one modify per group, and mark them revoked."""
    with _taken(grant_ids, token) as (grants, mine):
        if grants:
            _revoke(grants, mine)


def _revoke(grants: list[Grant], mine: uuid.UUID) -> None:
    by_group: dict[str, list[Grant]] = defaultdict(list)
    for g in grants:
        by_group[g.group_dn].append(g)
    try:
        with directory.session() as d:
            for group_dn, group_grants in by_group.items():
                _revoke_one_group(d, group_dn, group_grants, mine)
    except directory.DirectoryError as e:  # no DC answered at all
        _attempt_failed(grants, mine, e, phase="revoke")


def _revoke_one_group(d: directory.Directory, group_dn: str, grants: list[Grant], token: uuid.UUID) -> None:
    """Revoke one group's grants; a failure is recorded for these grants only."""
    try:
        outcome = _revoke_group(d, group_dn, grants)
    except directory.DirectoryError as e:
        _attempt_failed(grants, token, e, phase="revoke")
        return
    except Exception as e:  # alerted and retried like any other failure
        log.exception("unexpected error while revoking in %s", group_dn)
        _attempt_failed(grants, token, _unexpected(e), phase="revoke")
        return
    _mark_revoked(grants, token, outcome)


# -- sweeper ---------------------------------------------------------------------------
def _claim(qs, *, to_state: str | None, limit: int) -> tuple[uuid.UUID, list[Grant]]:
    """Claim up to ``limit`` grants matching ``qs`` in one short transaction; audit state changes."""
    now = timezone.now()
    with transaction.atomic():
        token, rows = claims.claim(qs.select_related("user", "target").order_by("expires_at"), limit=limit, now=now)
        if not rows:
            return token, []
        changing = [g.id for g in rows if to_state is not None and g.state != to_state]
        # A new phase starts its own count of attempts; a retry keeps counting.
        Grant.objects.filter(id__in=changing).update(state=to_state, attempts=0, next_attempt_at=None)
        if to_state == GrantState.REVOKING:  # why it ends, unless a release or admin revoke said already
            failed = [g.id for g in rows if g.state == GrantState.GRANT_FAILED]
            unset = Grant.objects.filter(id__in=changing, revoke_reason="")
            unset.filter(id__in=failed).update(revoke_reason=Grant.RevokeReason.FAILED)
            unset.update(revoke_reason=Grant.RevokeReason.EXPIRED)
        entries = []
        for g in rows:
            if to_state is not None and g.state != to_state:
                if to_state == GrantState.REVOKING and not g.revoke_reason:
                    g.revoke_reason = Grant.RevokeReason.FAILED if g.state == GrantState.GRANT_FAILED else Grant.RevokeReason.EXPIRED
                entries.append(_entry(g, actor="system:sweeper", action=f"grant.{to_state}", before=g.state,
                                      after=to_state, reason=g.revoke_reason))
        audit_record_many(entries)
    return token, rows


def _revocations_claim(now, *, send, limit: int, more=lambda: True) -> int:
    """Claim due revocations (new ones first, then retries) and hand each group's share to ``send(ids, token)``.

    Keeps claiming while whole batches come back, and ``more()`` says so: a mass expiry is
    handed out in one sweep instead of waiting for the next one behind the work it queued.
    """
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    starting = Grant.objects.filter(
        free,
        Q(expires_at__lte=now) | Q(revoke_requested_at__isnull=False),
        state__in=[GrantState.APPROVED, GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED, GrantState.GRANT_FAILED],
    )
    retrying = Grant.objects.filter(free, ready, state__in=[GrantState.REVOKING, GrantState.REVOKE_FAILED])
    claimed = 0
    for qs, to_state in ((starting, GrantState.REVOKING), (retrying, None)):
        for _ in range(settings.JITAD_SWEEP_MAX_BATCHES):
            if not more():
                return claimed
            token, rows = _claim(qs, to_state=to_state, limit=limit)
            by_group: dict[str, list[int]] = defaultdict(list)
            for g in rows:
                by_group[g.group_dn].append(g.id)
            for ids in by_group.values():
                for i in range(0, len(ids), 500):
                    send(ids[i : i + 500], token)
            claimed += len(rows)
            if len(rows) < limit:
                break
    return claimed


def revocations_sweep_here(*, until: float, **kwargs) -> int:
    """The broker does not answer: revoke due grants in this process until ``until`` (time.monotonic()).

    The watchdog's process calls this (the engine's ``broker_unreachable`` signal), so
    revocations go on while no message reaches a worker: the sweep's claim, then the
    worker's own execution of it. What cannot be started before ``until`` is handed back
    to the next run at once. Returns how many grants it took up.
    """
    done = 0

    def here(ids: list[int], token: uuid.UUID) -> None:
        nonlocal done
        if time.monotonic() >= until:
            _release(ids, token)
            return
        grants_revoke_execute(grant_ids=ids, token=token)
        done += len(ids)

    # Small batches: each is done before the next is claimed, and the deadline is looked at in between.
    _revocations_claim(timezone.now(), send=here, limit=100, more=lambda: time.monotonic() < until)
    if done:
        log.warning("broker unreachable: %d revocation(s) done in this process", done)
    return done


def sweep(*, now=None) -> dict[str, int]:
    """Drive every grant that needs work: due revocations first, then stalled or retried applies."""
    now = now or timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    limit = settings.JITAD_SWEEP_BATCH
    counts = {"revoke": _revocations_claim(now, send=_enqueue_revoke, limit=limit), "apply": 0, "revoke_check": 0}

    # Revoked grants whose check on the server is due (first try lost, or a retry).
    checks = Grant.objects.filter(free, ready, state=GrantState.REVOKED, host_revoke_check=Grant.HostCheck.PENDING)
    token, rows = _claim(checks, to_state=None, limit=limit)
    if rows:
        _enqueue_revoke_checks(rows, token)
    counts["revoke_check"] = len(rows)

    not_ending = Q(expires_at__gt=now, revoke_requested_at__isnull=True)
    first_apply = Grant.objects.filter(free, not_ending, state=GrantState.APPROVED)
    retry_apply = Grant.objects.filter(
        free, ready, not_ending,
        Q(state=GrantState.GRANTING) | Q(state__in=[GrantState.GRANT_FAILED, GrantState.UNVERIFIED], retryable=True),
    )
    for qs, to_state in ((first_apply, GrantState.GRANTING), (retry_apply, None)):
        token, rows = _claim(qs, to_state=to_state, limit=limit)
        for g in rows:
            _enqueue_apply(g.id, token)
        counts["apply"] += len(rows)
    pulse_mark(name="sweep")  # the watchdog alerts when this stops moving
    return counts
