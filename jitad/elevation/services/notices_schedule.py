"""What requesters are told about scheduled grants and grants waiting for a one-at-a-time target.

Called inside the transaction that changes the grant, like ``notices``: a notice exists
exactly when the change does. When the access itself is in AD, the holder hears it from
``notice_grant_active`` as for any grant.
"""
from jitad.notifications.models import Notification
from jitad.notifications.services import Outgoing, notification_create, notifications_create

from ..models import Grant
from .notices import _at, _portal, _quote


def notice_grant_scheduled(*, grant: Grant) -> Notification | None:
    """An approved request with a start ahead: when the access starts and ends; nothing is in AD yet."""
    g = grant
    return notification_create(
        event="grant.scheduled",
        subject=f"Scheduled: admin on {g.target.name} from {_at(g.starts_at)}",
        body=(f"Your admin rights on {g.target.name} (grant #{g.pk}) start at {_at(g.starts_at)} and end at "
              f"{_at(g.expires_at)}. Nothing changes before then; another message follows when the access is active. "
              "Cancel it on the portal if you no longer need it."),
        link=_portal(f"grant-{g.pk}"), object_type="grant", object_id=g.pk, people=[g.user],
    )


def notice_grant_waiting(*, grant: Grant, holder: Grant) -> Notification | None:
    """The target allows one admin at a time and someone else holds it: the grant waits its turn."""
    g, who = grant, holder.user.get_username()
    return notification_create(
        event="grant.waiting",
        subject=f"Waiting: admin on {g.target.name} is held by {who}",
        body=(f"{g.target.name} allows one admin at a time, and {who} holds it until {_at(holder.expires_at)}. "
              f"Your grant #{g.pk} starts as soon as it is free; another message follows then. "
              "Cancel it on the portal if you no longer need it."),
        link=_portal(f"grant-{g.pk}"), object_type="grant", object_id=g.pk, people=[g.user],
    )


def notice_grant_started_after_wait(*, grant: Grant) -> Notification | None:
    """The grant waited for a one-at-a-time target and its turn came: jitad is adding the holder now."""
    g = grant
    return notification_create(
        event="grant.started",
        subject=f"Your turn: admin on {g.target.name} until {_at(g.expires_at)}",
        body=(f"{g.target.name} is free now: jitad is adding you (grant #{g.pk}), until {_at(g.expires_at)}. "
              "Another message follows when the access is active."),
        link=_portal(f"grant-{g.pk}"), object_type="grant", object_id=g.pk, people=[g.user],
    )


_NEVER_STARTED = {
    Grant.RevokeReason.RELEASED: "You cancelled your scheduled admin rights on {t} (grant #{n}) before they started.",
    Grant.RevokeReason.ADMIN: "{by} revoked your scheduled admin rights on {t} (grant #{n}) before they started.",
    Grant.RevokeReason.EXPIRED: ("Your scheduled admin rights on {t} (grant #{n}) ended at {end} before they "
                                 "could start."),
}


def notices_grants_ended_unstarted(*, grants: list[Grant]) -> list[Notification]:
    """Grants that ended before they started: nothing was ever in AD; one bulk insert for the batch."""
    items = []
    for g in grants:
        what = _NEVER_STARTED.get(g.revoke_reason, _NEVER_STARTED[Grant.RevokeReason.EXPIRED]).format(
            t=g.target.name, n=g.pk, by=g.revoke_requested_by or "An administrator", end=_at(g.expires_at))
        if g.revoke_reason == Grant.RevokeReason.ADMIN and g.revoke_comment:
            what += f" Their reason: \"{_quote(g.revoke_comment)}\""
        advice = "" if g.revoke_reason == Grant.RevokeReason.RELEASED else " Ask again on the portal if you still need them."
        items.append(Outgoing(
            event="grant.revoked", subject=f"Ended before it started: admin on {g.target.name}",
            body=f"{what} Nothing was changed in the directory.{advice}",
            severity=Notification.Severity.WARNING if g.revoke_reason == Grant.RevokeReason.ADMIN
            else Notification.Severity.INFO,
            link=_portal("h-history"), object_type="grant", object_id=str(g.pk), people=[g.user],
        ))
    return notifications_create(items=items)
