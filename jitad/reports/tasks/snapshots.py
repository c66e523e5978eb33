"""The daily snapshot task: records finished days not yet recorded (idempotent; beat runs it hourly)."""
from celery import shared_task

from ..services.snapshots import snapshots_record


@shared_task(name="jitad.reports.snapshots_record", acks_late=True, reject_on_worker_lost=True)
def snapshots_record_task() -> int:
    return snapshots_record()
