"""Grants: how much more time one may get: the policy's extension count and its longest grant, both kept.

A policy's ``max_duration_minutes`` is the longest a grant may last, its extensions
included: "at most 4 h" on the request form stays true after any number of extensions.
``extension_room`` is the one answer the portal (whether to offer "Ask for more time", and
how much), the API and ``request_extend`` all use.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
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
    """The latest ``expires_at`` the policy allows this grant: its start plus the policy's longest grant.

    A scheduled grant's clock starts at ``starts_at`` (see ``grant_clock_fixed``), any other at its creation.
    """
    return (grant.starts_at or grant.created_at) + timedelta(minutes=policy.max_duration_minutes)


def extension_room(*, grant: Grant, policy: Policy | None, extensions: int | None = None, now=None) -> ExtensionRoom:
    """Whether ``grant`` may be extended under ``policy`` now, and by how many minutes at most.

    ``extensions`` overrides the grant's count (the caller read it from a locked row).
    Pending extension requests are not considered here (``request_extend`` refuses a second).
    """
    if grant.state == Grant.State.SCHEDULED and not grant.revoke_requested_at:
        return ExtensionRoom(0, "not_started", f"Grant #{grant.pk} has not started yet: ask for more time once it "
                                               "is active.")
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


# States in which a grant holds (or is about to hold) an exclusive target. A scheduled grant whose start has
# come (it waits only for the holder) counts too: it is ahead of anyone who asks after it.
HOLDING_STATES = (Grant.State.APPROVED, Grant.State.GRANTING, Grant.State.ACTIVE, Grant.State.UNVERIFIED,
                  Grant.State.GRANT_FAILED, Grant.State.REVOKING, Grant.State.REVOKE_FAILED)


def _holding(*, target, user=None, now=None, waiting: bool = True):
    now = now or timezone.now()
    q = Q(state__in=HOLDING_STATES)
    if waiting:
        q |= Q(state=Grant.State.SCHEDULED, starts_at__lte=now, revoke_requested_at__isnull=True)
    held = Grant.objects.filter(q, target=target).select_related("user")
    if user is not None:
        held = held.exclude(user=user)
    return held


def exclusive_holder(*, target, user=None) -> Grant | None:
    """On a target that allows one admin at a time, the grant of someone other than ``user`` holding it
    (the one that ends last), or None: the target is free, or not exclusive.

    A grant waiting for the target (scheduled, its start come) counts as holding it: whoever asks
    after it queues behind it.
    """
    if not target.exclusive:
        return None
    return _holding(target=target, user=user).order_by("-expires_at").first()


def exclusive_live_holder(*, target, user=None) -> Grant | None:
    """The grant of someone other than ``user`` that may have the membership of ``target`` now (waiting
    ones left out), the one that ends last; None when nobody does. Exclusive or not."""
    return _holding(target=target, user=user, waiting=False).order_by("-expires_at").first()


def grant_clock_fixed(grant: Grant) -> bool:
    """Whether ``grant`` ends at its request's scheduled start plus its duration, however late it starts.

    True for a request with a start under the policy's ``scheduled_start`` clock (the default): a
    late approval or a wait for an exclusive target shortens it. False for a request without a
    start (one that waited for an exclusive target gets its whole duration from when it starts)
    and under the ``approval`` clock.
    """
    req = grant.request
    return req.starts_at is not None and req.policy.schedule_clock == Policy.ScheduleClock.SCHEDULED_START


def scheduled_waits_for(grants) -> dict[int, Grant]:
    """For each scheduled grant among ``grants`` whose start has come (it waits for an exclusive target),
    the grant it waits for: the one holding the target now, else the one ahead of it in the queue."""
    now = timezone.now()
    out = {}
    for g in grants:
        if g.state != Grant.State.SCHEDULED or not g.starts_at or g.starts_at > now:
            continue
        holder = exclusive_live_holder(target=g.target, user=g.user)
        if holder is None and g.target.exclusive:
            holder = (_holding(target=g.target, user=g.user).filter(state=Grant.State.SCHEDULED)
                      .filter(Q(starts_at__lt=g.starts_at) | Q(starts_at=g.starts_at, id__lt=g.id))
                      .order_by("starts_at", "id").first())
        if holder is not None:
            out[g.pk] = holder
    return out
