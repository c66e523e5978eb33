"""Celery worker hooks: every worker process reports as a Node (heartbeat, shared watchdog), and
keeps its database connection across tasks, checked before each task uses it."""
import gc
import logging

from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connections

from jitad import logs

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


# -- database connections across tasks ---------------------------------------------------
# Celery's Django fixup closes every connection before and after each task unless
# CELERY_DB_REUSE_MAX is set (jitad/settings/celery.py sets it high): a task then paid for a
# new connection (PostgreSQL: a backend process and authentication). Instead each pool process
# keeps its connection for JITAD_WORKER_DB_CONN_MAX_AGE seconds, and around every task Django's
# own request rules apply (close_old_connections): a connection past its age, or one whose last
# error left it unusable, is closed; otherwise, with CONN_HEALTH_CHECKS, the task's first query
# is preceded by a liveness check (PostgreSQL: an empty query) and a dead connection (the
# server restarted, the backend killed) is replaced there, so it never fails the task.
@worker_process_init.connect
def _keep_db_connections(**kwargs):
    for conn in connections.all():
        conn.settings_dict["CONN_MAX_AGE"] = settings.JITAD_WORKER_DB_CONN_MAX_AGE
        conn.settings_dict["CONN_HEALTH_CHECKS"] = True


@task_prerun.connect
def _db_before_task(**kwargs):
    close_old_connections()


@task_postrun.connect
def _db_after_task(**kwargs):
    close_old_connections()


# -- what a task's log lines name (jitad/logs.py) -------------------------------------------
@task_prerun.connect
def _log_context_start(task_id=None, task=None, args=None, kwargs=None, **extra):
    logs.task_started(name=getattr(task, "name", "") or "", task_id=task_id or "", kwargs=kwargs, args=args or ())


@task_postrun.connect
def _log_context_end(**kwargs):
    logs.task_ended()
