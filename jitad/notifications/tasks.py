"""Deliver notifications from the worker: a task per delivery, a batch task (e-mails a chunk per SMTP session), the periodic checks.

Every task here runs on the "notifications" queue (CELERY_TASK_ROUTES), never beside
the grant engine's tasks.
"""
from celery import shared_task
from django.conf import settings

from . import services

# The soft limit lets an attempt record its own timeout; the hard limit ends a send stuck
# outside Python. Either way the claim lapses and the periodic check takes it up again.
_LIMITS = {"soft_time_limit": settings.JITAD_DELIVERY_TIMEOUT + 5, "time_limit": settings.JITAD_DELIVERY_TIMEOUT + 15}


# ``token`` is the claim the message carries (jitad.engine.claims). A message queued before
# deliveries carried claims has none ("" or its old due time): it does nothing, and the
# periodic check sends its delivery.
@shared_task(name="jitad.notifications.send", acks_late=True, **_LIMITS)
def delivery_send(delivery_id: int, token: str = "") -> None:
    services.delivery_send(delivery_id=delivery_id, token=token)


# A batch starts e-mails for at most email_batch_seconds(); then one send may still need its timeout
# (the soft limit), and closing the session its QUIT, another timeout (the hard limit).
_BATCH_SOFT = services.email_batch_seconds() + settings.JITAD_DELIVERY_TIMEOUT + 5
_BATCH_LIMITS = {"soft_time_limit": _BATCH_SOFT, "time_limit": _BATCH_SOFT + settings.JITAD_DELIVERY_TIMEOUT + 15}


@shared_task(name="jitad.notifications.send_batch", acks_late=True, **_BATCH_LIMITS)
def deliveries_send_batch(delivery_ids: list[int], token: str = "") -> None:
    if token:
        services.deliveries_send_batch(delivery_ids=delivery_ids, token=token)


@shared_task(name="jitad.notifications.resume", expires=120)
def deliveries_resume(holder: str = "") -> int:
    # The notice e-mails that waited while revocations ran (services.waiting); ``holder`` names the chain.
    return services.deliveries_resume(holder=holder)


@shared_task(name="jitad.notifications.resend", expires=300)
def deliveries_resend() -> int:
    return services.deliveries_resend()


@shared_task(name="jitad.notifications.digests", expires=300)
def digests_send() -> int:
    return len(services.digests_send())
