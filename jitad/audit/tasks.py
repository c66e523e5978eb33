"""Worker tasks of the audit app: send the chain to SIEM destinations (wake-up and beat's sweep)."""
from celery import shared_task

from .siem import outbox


@shared_task(name="jitad.audit.siem_send", expires=300)
def siem_send() -> int:
    return outbox.siem_send()


@shared_task(name="jitad.audit.siem_sweep", expires=300)
def siem_sweep() -> int:
    sent = outbox.siem_send()
    outbox.siem_lag_check()
    return sent
