"""What was actually delivered: per destination and person, for pages that must not promise more."""
from dataclasses import dataclass

from jitad.humantime import when

from .models import APPROVALS, NAMED_PREFIX, NOT_SET, SECURITY, Delivery


@dataclass(frozen=True)
class Told:
    """One recipient of a notification, and where its delivery stands."""

    who: str  # "the security channel", "approvals channel", "dba-team", or a person's user name
    address: str  # masked URL or e-mail address; blank when nothing is configured
    state: str  # "delivered", "pending", "failed" or "not configured"
    detail: str  # the last error, or when it was sent
    is_channel: bool


def _who(d: Delivery) -> str:
    if d.channel == Delivery.Channel.EMAIL:
        return d.destination
    if d.destination == SECURITY:
        return "the security channel"
    if d.destination == APPROVALS:
        return "the approvals channel"
    return d.destination.removeprefix(NAMED_PREFIX).lower().replace("_", "-")


def _state(d: Delivery) -> tuple[str, str]:
    if d.state == Delivery.State.SENT:
        return "delivered", f"{when(d.sent_at)}" if d.sent_at else ""
    if d.state == Delivery.State.PENDING:
        return "pending", d.last_error  # already "attempt N: why" (services.delivery)
    if d.attempts == 0 and d.last_error == NOT_SET.format(destination=d.destination):
        return "not configured", f"{d.destination} holds no URL: nobody there was told"
    return "failed", d.last_error


def deliveries_told(*, object_type: str, object_id, event: str) -> list[Told]:
    """Each delivery of the notifications ``event`` about one object, channels first, oldest first."""
    rows = (Delivery.objects.filter(notification__object_type=object_type, notification__object_id=str(object_id),
                                    notification__event=event)
            .order_by("notification_id", "id"))
    told = []
    for d in rows:
        state, detail = _state(d)
        told.append(Told(who=_who(d), address=d.address, state=state, detail=detail,
                         is_channel=d.channel == Delivery.Channel.APPRISE))
    return sorted(told, key=lambda t: not t.is_channel)
