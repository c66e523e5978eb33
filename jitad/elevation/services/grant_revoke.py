"""Revoking grants in AD: one modify per group, never removing a membership another live grant holds.

A membership is removed only when no other live grant of the same user in the same group
remains, and re-asserted if one appeared while it was being removed. The grants are
marked revoked conditional on still holding their claim; where the server is checked
over WinRM, the revocation is confirmed there by a task of its own.
"""
import logging
import uuid
from collections import defaultdict

from django.db import DatabaseError, transaction
from django.utils import timezone

from jitad import directory, metrics
from jitad.audit.services import audit_record_many
from jitad.engine import claims
from jitad.engine.services import REVOKING, pulse_mark

from ..models import Grant
from ..selectors.targets import group_nested_into_protected
from .grant_ephemeral import ephemeral_account_disable, ephemeral_accounts_mark_disabled
from .grant_failures import _attempt_failed, failed_conditions_resolve
from .grant_work import _ad_account, _enqueue_revoke_checks, _entry, _taken
from .notices import notices_grants_revoked

log = logging.getLogger(__name__)
GrantState = Grant.State


def _live_holders(group_dn: str, user_ids, exclude_ids) -> set[int]:
    """Users who still hold a live grant in ``group_dn`` (other than the grants being revoked)."""
    return set(
        Grant.objects.filter(
            group_dn=group_dn,
            user_id__in=list(user_ids),
            state__in=[GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED],
            expires_at__gt=timezone.now(),
            revoke_requested_at__isnull=True,
            account="",  # an ephemeral account is its grant's alone: it never holds a person's membership
        )
        .exclude(id__in=list(exclude_ids))
        .order_by()  # a set: no sort
        .values_list("user_id", flat=True)
    )

def _current_dn(d: directory.Directory, g: Grant, member_keys: set[str]) -> str | None:
    """The DN to remove for ``g``: as recorded, or as it is now if the account was renamed or moved."""
    if g.ephemeral:  # its own account, never renamed: absent from the group (never applied) is nothing to remove
        present = g.account_dn and directory.normalize_dn(g.account_dn) in member_keys
        return g.account_dn if present else None
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
    An ephemeral account is disabled first, so it cannot start a logon while it leaves the group.
    """
    ids = {g.id for g in grants}
    for g in grants:
        ephemeral_account_disable(d, g)
    personal = [g for g in grants if not g.ephemeral]
    keep = _live_holders(group_dn, {g.user_id for g in personal}, ids)
    read = d.group_members(group_dn)  # its SID too: the seam refuses a well-known privileged group
    member_keys = {directory.normalize_dn(m) for m in read.members}
    to_remove: dict[str, list[Grant]] = defaultdict(list)
    outcome = {}
    for g in grants:
        if not g.ephemeral and g.user_id in keep:
            outcome[g.id] = False
            continue
        dn = _current_dn(d, g, member_keys)
        outcome[g.id] = True
        if dn:
            to_remove[dn].append(g)
    d.remove_members(group_dn, list(to_remove), read=read)
    # A grant for one of these users may have started while we removed: put it back.
    raced = _live_holders(group_dn, {g.user_id for gs in to_remove.values() for g in gs if not g.ephemeral}, ids)
    for dn, gs in to_remove.items():
        if any(not g.ephemeral and g.user_id in raced for g in gs):
            d.add_member(group_dn, dn, nested_into_protected=group_nested_into_protected(group_dn))
            log.warning("re-added %s to %s for a grant that started during revocation", dn, group_dn)
    return outcome


def _mark_revoked(grants: list[Grant], token: uuid.UUID, outcome: dict[int, bool]) -> None:
    now = timezone.now()
    entries, recovered = [], []
    with transaction.atomic():
        held = {
            g.id: g.state
            for g in Grant.objects.select_for_update().filter(id__in=list(outcome), claim_token=token)
            .only("id", "state").order_by("pk")  # in key order, as attempt_failed locks them
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
                host_revoke_check=Grant.HostCheck.PENDING, claim_token=check_token, lease_until=claims.lease_until(now)
            )
            transaction.on_commit(lambda: _enqueue_revoke_checks(checked, check_token))
        entries += ephemeral_accounts_mark_disabled([g for g in grants if g.id in held])
        for g in grants:
            if g.id not in held:
                continue
            entries.append(_entry(g, actor="system:engine", action="grant.revoked", before=held[g.id], after=GrantState.REVOKED,
                                  reason=g.revoke_reason or Grant.RevokeReason.EXPIRED,
                                  membership_removed=outcome[g.id],
                                  lateness_ms=int((now - g.expires_at).total_seconds() * 1000)))
            if held[g.id] == GrantState.REVOKE_FAILED:
                recovered.append(g)
        notices_grants_revoked(grants=[g for g in grants if g.id in held], outcome=outcome)
        # Last: the audit chain's head stays locked until the commit, and every other batch's record waits for it.
        audit_record_many(entries)
        ends = [_due(g) for g in grants if g.id in held]
        transaction.on_commit(lambda: _lateness_observe(now, ends))
    if recovered:
        failed_conditions_resolve()


def _due(g: Grant):
    """When the grant was due to lose its membership: its end, or the request to end it early."""
    asked = g.revoke_requested_at
    return asked if asked is not None and asked < g.expires_at else g.expires_at


def _lateness_observe(revoked_at, ends) -> None:
    """Count each committed revocation's lateness (jitad_revocation_lateness_seconds): an increment, no I/O."""
    for end in ends:
        metrics.observe(metrics.revocation_lateness, (revoked_at - end).total_seconds())


def grants_revoke_execute(*, grant_ids: list[int], token) -> None:
    """Remove the memberships of the claimed grants, one modify per group, and mark them revoked.

    The engine's ``revoking`` pulse is marked as it starts and ends: notice e-mails wait while
    revocations run (jitad.notifications)."""
    _revoking_mark()
    try:
        # The claim gave this message its own token (a group's, or one grant's), and a removal is idempotent:
        # kept, not swapped. A second delivery running at the same time removes the same members and
        # records nothing (the grants are marked revoked conditional on the claim, once).
        with _taken(grant_ids, token, keep=True) as (grants, mine):
            if grants:
                _revoke(grants, mine)
    finally:
        _revoking_mark()


def _revoking_mark() -> None:
    """Best effort: a database hiccup here must not stop a revocation (it only delays people's e-mails less)."""
    try:
        pulse_mark(name=REVOKING)
    except DatabaseError as e:
        log.warning("could not mark the revoking pulse: %s", e)


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
        _attempt_failed(grants, token, directory.unexpected(e), phase="revoke")
        return
    _mark_revoked(grants, token, outcome)
