"""Celery beat's scheduler, elected: run it in as many processes as you like, one sends at a time.

Every engine worker runs it embedded (``celery worker -B``), or ``celery beat`` runs on
several machines. Each instance tries to take the lease ``scheduler`` every third of
JITAD_SCHEDULER_LEASE_SECONDS; the holder sends the periodic tasks (the sweep every
JITAD_SWEEP_INTERVAL, the reconciler, ...), the others wait. If the holder dies its lease
lapses and another instance takes over within JITAD_SCHEDULER_LEASE_SECONDS: no person,
no restart. Two instances may both believe they lead only if one stalls longer than a
lease; every periodic task is idempotent (sweeps claim with skip-locked), so that costs
a duplicate message, never a double action.
"""
import logging
import os
import time

from celery.beat import Scheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from . import services
from .models import Heartbeat
from .node import Node, node_name
from .queue import BROKER_ERRORS

log = logging.getLogger(__name__)
LEASE = "scheduler"


def _forget_inherited_connections() -> None:
    """Drop database connections inherited through fork (``worker -B``) without talking on them.

    Closing them properly would end the parent's session on the shared socket; closing the
    file descriptor only drops this process's copy.
    """
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None:
            continue
        fileno = getattr(raw, "fileno", None)
        if callable(fileno):
            try:
                os.close(fileno())
            except OSError:
                pass
        conn.connection = None


class ElectedScheduler(Scheduler):
    """An in-memory beat scheduler that only sends while it holds the scheduler lease."""

    def setup_schedule(self):
        _forget_inherited_connections()
        self._name = node_name("scheduler")
        self._holder = f"{self._name}:{os.getpid()}"
        self._leading_until = 0.0
        self._next_check = 0.0
        self._node = Node(node=self._name, role=Heartbeat.Role.SCHEDULER).start()
        super().setup_schedule()

    def _renew(self) -> None:
        seconds = settings.JITAD_SCHEDULER_LEASE_SECONDS
        now = time.monotonic()
        self._next_check = now + seconds / 3
        try:
            close_old_connections()
            held = services.lease_take(name=LEASE, holder=self._holder, seconds=seconds)
        except DatabaseError as e:
            log.warning("scheduler %s cannot reach the database: %s", self._name, e)
            held = False
        leading = now < self._leading_until
        if held and not leading:
            log.info("scheduler %s leads (pid %s)", self._name, os.getpid())
        elif leading and not held:
            log.warning("scheduler %s no longer leads", self._name)
        # Count on the lease only for most of its length: it is renewed well before that.
        self._leading_until = now + seconds * 0.8 if held else 0.0

    def tick(self, *args, **kwargs):
        if time.monotonic() >= self._next_check:
            self._renew()
        wait = max(0.05, self._next_check - time.monotonic())
        if time.monotonic() >= self._leading_until:
            return wait
        return min(super().tick(*args, **kwargs), wait)

    def apply_entry(self, entry, producer=None):
        """Send a due task. With the broker down: one warning a minute, not a traceback per task and tick
        (the watchdog alerts the outage and does the urgent work meanwhile)."""
        log.debug("scheduler %s sends %s (%s)", self._name, entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as e:  # beat wraps the send's error in a SchedulingError
            cause = e if isinstance(e, BROKER_ERRORS) else e.__cause__ or e.__context__
            if not isinstance(cause, BROKER_ERRORS):
                log.exception("scheduler %s could not send %s", self._name, entry.task)  # as beat does
                return
            now = time.monotonic()
            if now - self._broker_warned_at > 60:
                self._broker_warned_at = now
                log.warning("scheduler %s cannot send %s while the broker is unreachable (said once a minute): "
                            "%s: %s", self._name, entry.task, type(cause).__name__, cause)

    _broker_warned_at = float("-inf")

    def close(self):
        try:
            close_old_connections()
            services.lease_release(name=LEASE, holder=self._holder)
        except DatabaseError as e:
            log.warning("scheduler %s could not hand its lease over: %s", self._name, e)
        self._node.stop()
        super().close()
