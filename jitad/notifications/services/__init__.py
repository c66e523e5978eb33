"""The notification service: record messages with their deliveries, send them from the worker.

Everything else calls these: ``alert_raise`` for the security channel,
``notification_create`` / ``notifications_create`` for anything addressed to people or
named destinations; ``digests_send`` (beat) for routine alerts that waited. Rows are
written in the caller's transaction; each delivery is sent by its own task after commit.
"""
from .channels import SendFailed
from .compose import Outgoing, alert_raise, deliveries_enqueue, notification_create, notifications_create
from .conditions import condition_raise, condition_resolve, conditions_open
from .delivery import deliveries_resend, deliveries_retry, deliveries_send_here, delivery_send
from .email_batch import deliveries_send_batch, email_batch_seconds
from .destinations import APPROVALS, SECURITY, destination_urls, named_destination, redact, scrub
from .digest import digests_send
from .waiting import deliveries_resume

__all__ = [
    "APPROVALS",
    "Outgoing",
    "SECURITY",
    "SendFailed",
    "alert_raise",
    "condition_raise",
    "condition_resolve",
    "conditions_open",
    "deliveries_enqueue",
    "deliveries_resend",
    "deliveries_resume",
    "deliveries_retry",
    "deliveries_send_batch",
    "deliveries_send_here",
    "email_batch_seconds",
    "delivery_send",
    "destination_urls",
    "digests_send",
    "named_destination",
    "notification_create",
    "notifications_create",
    "redact",
    "scrub",
]
