"""Wake-up calls to the workers, by task name, that never fail the caller when the broker is down.

The database is the source of truth; a message only says "look now". So a broker outage
(Redis stopped, the embedded broker's folder unusable) must never turn a committed change
into an error page: the send is logged, ``on_failure`` lets the caller hand its claim back
to the sweep, and the sweep finds the work once the broker answers again.
"""
import logging

from celery import current_app
from django.db import transaction
from kombu.exceptions import KombuError

log = logging.getLogger(__name__)

# Redis refusing (kombu raises OperationalError, a KombuError), or the filesystem broker's
# folder gone or unwritable (an OSError straight from the transport).
BROKER_ERRORS = (KombuError, OSError)


def enqueue(task_name: str, *args, on_failure=None, **options) -> bool:
    """Send ``task_name(*args)``; True if the broker took it. Routing follows CELERY_TASK_ROUTES."""
    try:
        current_app.send_task(task_name, args=args, **options)
        return True
    except BROKER_ERRORS as e:
        log.warning("broker unreachable, %s left to the sweep: %s: %s", task_name, type(e).__name__, e)
        if on_failure is not None:
            on_failure()
        return False


def enqueue_on_commit(task_name: str, *args, on_failure=None, **options) -> None:
    """``enqueue`` once the caller's transaction commits (immediately outside one)."""
    transaction.on_commit(lambda: enqueue(task_name, *args, on_failure=on_failure, **options))
