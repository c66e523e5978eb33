"""Grants: how much more time one may get: the policy's extension count and its longest grant, both kept.

A policy's ``max_duration_minutes`` is the longest a grant may last, its extensions
included: "at most 4 h" on the request form stays true after any number of extensions.
``extension_room`` is the one answer the portal (whether to offer "Ask for more time", and
how much), the API and ``request_extend`` all use.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from jitad.humantime import minutes_text

from ..models import Grant, Policy

EXTENDABLE_STATES = (Grant.State.APPROVED, Grant.State.GRANTING, Grant.State.ACTIVE, Grant.State.UNVERIFIED)


@dataclass(frozen=True)
class ExtensionRoom:
    """``minutes`` that may still be added (0: none), and if none, why: a RequestRefused ``code`` and ``message``."""

    minutes: int
    code: str = ""
    message: str = ""

    def __bool__(self) -> bool:
        return self.minutes > 0


def grant_end_limit(*, grant: Grant, policy: Policy):
    """The latest ``expires_at`` the policy allows this grant: its start plus the policy's longest grant."""
    return grant.created_at + timedelta(minutes=policy.max_duration_minutes)


def extension_room(*, grant: Grant, policy: Policy | None, extensions: int | None = None, now=None) -> ExtensionRoom:
    """Whether ``grant`` may be extended under ``policy`` now, and by how many minutes at most.

    ``extensions`` overrides the grant's count (the caller read it from a locked row).
    Pending extension requests are not considered here (``request_extend`` refuses a second).
    """
    if grant.state not in EXTENDABLE_STATES or grant.revoke_requested_at:
        return ExtensionRoom(0, "not_extendable", f"Grant #{grant.pk} is {grant.state} and cannot be extended.")
    if policy is None:
        return ExtensionRoom(0, "not_eligible", f"No policy lets you request {grant.target.name} any more, "
                                                "so this grant cannot be extended.")
    used = grant.extensions if extensions is None else extensions
    if policy.max_extensions == 0:
        return ExtensionRoom(0, "too_many_extensions", f"Policy {policy.name} allows no extensions: ask again "
                                                       "after this grant ends if you need more time.")
    if used >= policy.max_extensions:
        return ExtensionRoom(0, "too_many_extensions",
                             f"Policy {policy.name} allows {policy.max_extensions} extension(s) of one grant, "
                             "and this one has had them all.")
    now = now or timezone.now()
    left = grant_end_limit(grant=grant, policy=policy) - max(grant.expires_at, now)
    minutes = int(left.total_seconds() // 60)
    if minutes < 1:
        return ExtensionRoom(0, "total_duration_reached",
                             f"Policy {policy.name} lets a grant last at most "
                             f"{minutes_text(policy.max_duration_minutes)} in all, and grant #{grant.pk} already does.")
    return ExtensionRoom(minutes)


# States in which a grant holds (or is about to hold) an exclusive target: everything live, and scheduled ones
# whose start has come (they wait only for the holder).
HOLDING_STATES = (Grant.State.APPROVED, Grant.State.GRANTING, Grant.State.ACTIVE, Grant.State.UNVERIFIED,
                  Grant.State.GRANT_FAILED, Grant.State.REVOKING, Grant.State.REVOKE_FAILED)


def exclusive_holder(*, target, user=None) -> Grant | None:
    """On a target that allows one admin at a time, the grant of someone other than ``user`` holding it
    (the one that ends last), or None: the target is free, or not exclusive."""
    if not target.exclusive:
        return None
    held = Grant.objects.filter(target=target, state__in=HOLDING_STATES).select_related("user")
    if user is not None:
        held = held.exclude(user=user)
    return held.order_by("-expires_at").first()
