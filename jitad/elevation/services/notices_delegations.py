"""What the two people of a delegation are told when it is made and when it is ended early.

Only the delegator and the deputy are told (never a requester). Called inside the
transaction that makes the change, so a notice exists exactly when the change does.
"""
from django.conf import settings
from django.urls import reverse

from jitad.humantime import when
from jitad.notifications.models import Notification
from jitad.notifications.services import notification_create

from ..models import Delegation


def _page() -> str:
    """The portal's Deputies page."""
    return settings.JITAD_BASE_URL + reverse("elevation:delegations")


def _period(d: Delegation) -> str:
    return f"from {when(d.starts_at)} until {when(d.ends_at)}"


def notice_delegation_created(*, delegation: Delegation, by=None) -> Notification | None:
    """Tell both people that ``delegation.deputy`` may now decide in the delegator's place, and when."""
    d = delegation
    delegator, deputy = d.delegator.get_username(), d.deputy.get_username()
    made = "" if by is None or by.pk == d.delegator_id else f" {by.get_username()} made it for {delegator}."
    body = (f"{deputy} may decide access requests in {delegator}'s place {_period(d)} (delegation #{d.pk}): exactly "
            f"the requests {delegator} may decide, never their own.{made}")
    if d.reason:
        body += f"\nReason: {d.reason[:300]}"
    body += "\nEither of you can end it early on the Deputies page."
    return notification_create(
        event="delegation.created", subject=f"Deputy: {deputy} decides for {delegator} until {when(d.ends_at)}",
        body=body, link=_page(), object_type="delegation", object_id=d.pk, people=[d.delegator, d.deputy],
    )


def notice_delegation_revoked(*, delegation: Delegation, by=None, reason: str = "") -> Notification | None:
    """Tell both people that the delegation ended early, and who ended it."""
    d = delegation
    delegator, deputy = d.delegator.get_username(), d.deputy.get_username()
    who = by.get_username() if by is not None else d.revoked_by or "jitad"
    body = (f"{who} ended delegation #{d.pk} at {when(d.revoked_at)}: {deputy} no longer decides access requests "
            f"in {delegator}'s place.")
    if reason:
        body += f"\nReason: {reason[:300]}"
    return notification_create(
        event="delegation.revoked", subject=f"Deputy ended: {deputy} no longer decides for {delegator}",
        body=body, link=_page(), object_type="delegation", object_id=d.pk, people=[d.delegator, d.deputy],
    )
