"""Deputies: which delegations let a person decide in another approver's place, and who may see or make them.

A delegation is seen only by its two people (the portal, the API) and, in the admin, by
superusers and staff with the view permission; never by a requester.
"""
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from jitad.accounts.groups import JSONListMatches, group_names_query

from ..models import Delegation, Policy, Target


def delegations_running(*, deputy, at=None) -> QuerySet:
    """The delegations ``deputy`` may act on at ``at`` (now): started, not ended, not revoked, from an active delegator."""
    at = at or timezone.now()
    return (Delegation.objects.filter(deputy=deputy, starts_at__lte=at, ends_at__gt=at, revoked_at__isnull=True,
                                      delegator__is_active=True)
            .select_related("delegator").order_by("starts_at", "pk"))


def approver_in_own_right(*, user) -> bool:
    """True if ``user`` is in the approver groups of some enabled policy or of some target.

    Only this right may be delegated: a right received as a deputy is not counted, so a
    deputy cannot pass it on (no chains).
    """
    if not user.is_authenticated or not user.is_active:
        return False
    return groups_approve_anywhere(group_names_query(user))


def groups_approve_anywhere(groups) -> bool:
    """True if one of ``groups`` (names, or a query of names) approves under an enabled policy or for a target."""
    return (
        Policy.objects.filter(enabled=True).filter(JSONListMatches("approver_groups", groups)).exists()
        or Target.objects.filter(JSONListMatches("approver_groups", groups)).exists()
    )


def delegation_state(delegation: Delegation, at=None) -> str:
    """``revoked``, ``ended``, ``running`` or ``scheduled`` (not started yet), at ``at`` (now)."""
    at = at or timezone.now()
    if delegation.revoked_at is not None:
        return "revoked"
    if delegation.ends_at <= at:
        return "ended"
    return "running" if delegation.starts_at <= at else "scheduled"


def _base() -> QuerySet:
    return Delegation.objects.select_related("delegator", "deputy").order_by("-starts_at", "-pk")


def delegations_given(*, user) -> QuerySet:
    """Delegations ``user`` made of their own approval right, newest first."""
    return _base().filter(delegator=user)


def delegations_received(*, user) -> QuerySet:
    """Delegations that make ``user`` a deputy, newest first."""
    return _base().filter(deputy=user)


def delegations_of(*, user) -> QuerySet:
    """Every delegation ``user`` is one of the two people of (given or received), newest first."""
    return _base().filter(Q(delegator=user) | Q(deputy=user))


def delegation_visible(*, user, delegation_id) -> Delegation | None:
    """The delegation with this id if ``user`` gave or received it, else None (other people's are not disclosed)."""
    try:
        pk = int(str(delegation_id))
    except (TypeError, ValueError):
        return None
    if pk <= 0 or pk > 2**63 - 1:
        return None
    return delegations_of(user=user).filter(pk=pk).first()


def shows_delegations(*, user) -> bool:
    """True if the portal offers ``user`` the Deputies page: an approver in their own right, or a deputy of a
    delegation that has not ended."""
    if not user.is_authenticated or not user.is_active:
        return False
    now = timezone.now()
    received = Delegation.objects.filter(deputy=user, ends_at__gt=now, revoked_at__isnull=True).exists()
    return received or approver_in_own_right(user=user)


def deputy_find(*, username: str):
    """The active person with this user name (case-insensitive), or None."""
    username = (username or "").strip()
    if not username or "\x00" in username:
        return None
    return get_user_model().objects.filter(username__iexact=username, is_active=True).order_by("pk").first()


def delegation_can_revoke(*, user, delegation: Delegation) -> bool:
    """True if ``user`` may end ``delegation`` early: its delegator, its deputy (declining), or a superuser."""
    if not user.is_active:
        return False
    return user.is_superuser or user.pk in (delegation.delegator_id, delegation.deputy_id)
