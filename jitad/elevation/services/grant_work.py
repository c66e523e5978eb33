"""What every phase of a grant's work shares: its audit entries, its messages, taking a claim, links.

A grant's work is claimed with the engine (``jitad.engine.claims``): the claim's token
travels in the task message, and the execution swaps it for its own before acting
(``_taken``), so a duplicated message finds nothing to do and a lost one is claimed again
by the sweep when the lease lapses; a removal keeps its group's own token instead (its work
is idempotent, and only one execution records it). A message that cannot be sent hands its
claim back.
"""
import uuid
from collections import defaultdict
from contextlib import contextmanager

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from jitad import directory
from jitad.accounts.models import DirectoryAccount
from jitad.audit.services import AuditEntry
from jitad.engine import claims, keeper, queue

from ..models import Grant, Target


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


def _enqueue_apply(grant_id: int, token: uuid.UUID) -> None:
    queue.enqueue("jitad.elevation.grant_apply", grant_id, str(token),
                  on_failure=lambda: claims.release(Grant, [grant_id], token))


def _enqueue_revoke(grant_ids: list[int], token: uuid.UUID, at=None) -> None:
    """``at``: run no earlier than this (a grant end claimed ahead, grant_sweep.revocations_claim_ahead)."""
    eta = {"eta": at} if at is not None and at > timezone.now() else {}
    queue.enqueue("jitad.elevation.grants_revoke", list(grant_ids), str(token),
                  on_failure=lambda: claims.release(Grant, grant_ids, token), **eta)


def _enqueue_account_delete(grant_ids: list[int], token: uuid.UUID) -> None:
    queue.enqueue("jitad.elevation.grants_account_delete", list(grant_ids), str(token),
                  on_failure=lambda: claims.release(Grant, grant_ids, token))


def _enqueue_revoke_checks(grants: list[Grant], token: uuid.UUID) -> None:
    """One message per server, so one slow server never holds up the others' checks."""
    by_target: dict[int, list[int]] = defaultdict(list)
    for g in grants:
        by_target[g.target_id].append(g.id)
    for ids in by_target.values():
        queue.enqueue("jitad.elevation.grants_check_revoked", ids, str(token), on_failure=lambda ids=ids: claims.release(Grant, ids, token))


@contextmanager
def _taken(grant_ids, token, *, keep: bool = False):
    """Swap the claim a message carries for this execution's own (a duplicate gets nothing), and
    keep renewing it while the block runs: a dead worker's claim lapses within one lease.

    ``keep``: the message's token is its own (a removal, claimed a token per group), and is kept
    (``claims.take``): its work must then be idempotent."""
    mine, grants = claims.take(Grant.objects.select_related("user"), grant_ids, token, keep=keep)
    if not grants:
        yield grants, mine
        return
    with keeper.held(Grant, mine):
        # A batch's grants share a target or a few (a removal is one group's): each target is read once and
        # shared, not joined into every row and decoded again for each (its lists are JSON).
        targets = Target.objects.in_bulk({g.target_id for g in grants})
        for g in grants:
            g.target = targets[g.target_id]
        yield grants, mine


def _ad_account(d: directory.Directory, user) -> directory.DirectoryUser:
    """The AD account behind ``user``: by the objectGUID its login linked, so a reused name
    can never stand in for a renamed account; by name only for users with no AD link."""
    guid = DirectoryAccount.objects.filter(user_id=user.pk).values_list("guid", flat=True).first()
    return d.find_user_by_guid(guid) if guid else d.find_user(user.get_username())


def _admin_link(g: Grant) -> str:
    return settings.JITAD_BASE_URL + reverse("admin:elevation_grant_change", args=[g.pk])


def _grants_link(state: str) -> str:
    return settings.JITAD_BASE_URL + reverse("admin:elevation_grant_changelist") + f"?state__exact={state}"
