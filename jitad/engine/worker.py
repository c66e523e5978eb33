"""Celery worker hooks: every worker process reports as a Node (heartbeat, shared watchdog)."""
import gc
import logging

from celery.signals import worker_ready, worker_shutdown

from .models import Heartbeat
from .node import Node

log = logging.getLogger(__name__)
_node: Node | None = None


def consumed_queues(consumer) -> tuple[str, ...]:
    """The queues this worker consumes (``-Q``, or every declared queue without it)."""
    try:
        return tuple(q.name for q in consumer.task_consumer.queues)
    except AttributeError:
        queues = consumer.app.amqp.queues
        return tuple(getattr(queues, "consume_from", None) or queues)


@worker_ready.connect
def _worker_ready(sender=None, **kwargs):
    global _node
    name = getattr(sender, "hostname", None) or "worker"
    try:
        queues = consumed_queues(sender)
    except Exception:  # noqa: BLE001 - reporting without queues beats not reporting at all
        log.exception("could not tell which queues %s consumes", name)
        queues = ()
    _node = Node(node=name, role=Heartbeat.Role.WORKER, queues=queues).start()


@worker_shutdown.connect
def _worker_shutdown(sender=None, **kwargs):
    if _node is not None:
        _node.stop()
    # The process only exits from here on. Without this, the interpreter's last garbage
    # collection walks every object Django and Celery made (a second or more on a busy
    # machine), all to free memory the exit frees anyway; a supervisor's restart waits for it.
    gc.freeze()
