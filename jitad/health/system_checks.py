"""System checks for watching jitad: counters that only one process of many would show."""
from django.conf import settings
from django.core import checks

from jitad import metrics


def metrics_multiprocess(app_configs, **kwargs):
    """In production without PROMETHEUS_MULTIPROC_DIR, /metrics shows the counters of whichever process answers."""
    if not settings.PRODUCTION or metrics.MULTIPROCESS:
        return []
    return [checks.Warning(
        "PROMETHEUS_MULTIPROC_DIR is not set: every gunicorn and Celery process counts for itself, and /metrics "
        "shows the counters of the one web process that answers each scrape (they jump between scrapes, and the "
        "workers' are never seen).",
        hint="Set it to the same folder, emptied at boot, for every jitad process on the machine "
             "(ops/README.md, \"Health and metrics\").",
        id="jitad.health.W001",
    )]
