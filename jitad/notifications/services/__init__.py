"""The notification service: record messages with their deliveries, send them from the worker.

Everything else calls these: ``alert_raise`` for the security channel,
``notification_create`` / ``notifications_create`` for anything addressed to people or
named destinations. Rows are written in the caller's transaction; each delivery is sent
by its own task after commit.
"""
from .compose import Outgoing, alert_raise, deliveries_enqueue, notification_create, notifications_create
from .delivery import SendFailed, deliveries_resend, deliveries_retry, delivery_send
from .destinations import APPROVALS, SECURITY, destination_urls, named_destination, redact, scrub

__all__ = [
    "APPROVALS",
    "Outgoing",
    "SECURITY",
    "SendFailed",
    "alert_raise",
    "deliveries_enqueue",
    "deliveries_resend",
    "deliveries_retry",
    "delivery_send",
    "destination_urls",
    "named_destination",
    "notification_create",
    "notifications_create",
    "redact",
    "scrub",
]
