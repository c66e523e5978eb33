"""Deliver notifications from the worker, with bounded retries."""
from celery import shared_task
from django.conf import settings

from .models import Notification
from .services import DeliveryFailed
from .services import notification_deliver as deliver


@shared_task(bind=True, name="jitad.notifications.deliver", max_retries=None)
def notification_deliver(self, notification_id: int) -> None:
    note = Notification.objects.filter(id=notification_id, state=Notification.State.PENDING).first()
    if note is None:
        return
    final = note.attempts + 1 >= settings.JITAD_ALERT_MAX_ATTEMPTS
    try:
        deliver(notification=note, final_attempt=final)
    except DeliveryFailed as e:
        raise self.retry(countdown=min(60, 2 ** note.attempts), exc=e) from e
