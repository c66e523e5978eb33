"""The daily prune (beat entry "retention-prune"): closed records and audit events past their retention."""
from celery import shared_task

from ..services.retention import retention_prune


@shared_task(name="jitad.reports.prune", expires=3600)
def prune() -> dict:
    """Run one prune with the configured retention; returns the counts (nothing to do when both are 0)."""
    return retention_prune().counts
