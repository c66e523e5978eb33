"""Celery beat's scheduler, elected: run it in as many processes as you like, one sends at a time.

Every engine worker runs it embedded (``celery worker -B``), or ``celery beat`` runs on
several machines. Each instance tries to take the lease ``scheduler`` every third of
JITAD_SCHEDULER_LEASE_SECONDS; the holder sends the periodic tasks (the sweep every
JITAD_SWEEP_INTERVAL, the reconciler, ...), the others wait. If the holder dies its lease
lapses and another instance takes over within JITAD_SCHEDULER_LEASE_SECONDS: no person,
no restart. Two instances may both believe they lead only if one stalls longer than a
lease; every periodic task is idempotent (sweeps claim with skip-locked), so that costs
a duplicate message, never a double action.

Wake-ups: the leader also asks the layers above (the engine's ``next_due`` signal) when
their timed work next falls due, every JITAD_WAKE_REFRESH_SECONDS and right after each
wake-up, and sends the task at that instant: a grant's end is swept when it comes, not at
the next periodic sweep. Each wake-up covers everything due up to the moment it is sent
(the next question asks for work due strictly after it), so rows due together cost one
message, and a slow sweep never makes the scheduler send the same wake-up again.
"""
import logging
import os
import time
from datetime import UTC, datetime

from celery.beat import Scheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from . import services
from .models import Heartbeat
from .node import Node, node_name
from .queue import BROKER_ERRORS
from .signals import next_due

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
        self._wake_ask_at = 0.0  # time.time() of the next question to the next_due receivers
        self._wake_due: dict[str, float] = {}  # task -> time.time() it falls due
        self._wake_mark = 0.0  # time.time() up to which due work was covered by the wake-ups sent
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
            self._wake_ask_at, self._wake_due, self._wake_mark = 0.0, {}, 0.0  # a new leader asks afresh
            return wait
        return max(0.0, min(super().tick(*args, **kwargs), wait, self._wake()))

    def _wake(self, now: float | None = None) -> float:
        """Send the tasks whose timed work is due now; return the seconds until the next look.

        Wake-ups are hints (the periodic tasks are the safety net), so nothing here may stop
        beat: any error is logged and the next look is a refresh away.
        """
        now = time.time() if now is None else now
        refresh = settings.JITAD_WAKE_REFRESH_SECONDS
        try:
            if self._wake_ask_at - now > refresh or self._wake_mark > now:  # the clock was set back
                self._wake_ask_at, self._wake_mark = now, min(self._wake_mark, now)
            if now >= self._wake_ask_at:
                self._wake_ask_at = now + refresh
                self._wake_due = self._ask(now)
            due = {task: at for task, at in self._wake_due.items() if at <= now}
            for task, at in due.items():
                del self._wake_due[task]
                self._send(task, at)
            if due:
                # What fell due up to now is those messages' work (a sweep takes everything due when
                # it runs); ask at once for what comes after.
                self._wake_mark = now
                self._wake_ask_at = now
                return 0.0
            return min([self._wake_ask_at - now, *(at - now for at in self._wake_due.values())])
        except Exception:  # noqa: BLE001 - a hint that failed must not end beat's loop
            log.exception("scheduler %s: looking for due work failed", self._name)
            self._wake_ask_at, self._wake_due = now + refresh, {}
            return refresh

    def _ask(self, now: float) -> dict[str, float]:
        """Each receiver's next due instant (time.time()), for work due after the last wake-up sent.

        Asking from the last wake-up rather than from now finds work that fell due since,
        even if it was recorded after the last question (a retry due in 300 ms): it is sent
        at once.
        """
        after = datetime.fromtimestamp(self._wake_mark, UTC)
        answers: dict[str, float] = {}
        try:
            close_old_connections()
            for receiver, answer in next_due.send_robust(sender=None, after=after):
                if isinstance(answer, Exception):  # the database is away, say: the periodic tasks go on
                    if time.monotonic() - self._due_warned_at > 60:
                        self._due_warned_at = time.monotonic()
                        log.warning("scheduler %s: %s could not say when its work is due (said once a minute): "
                                    "%s", self._name, getattr(receiver, "__qualname__", receiver), answer)
                elif answer is not None:
                    task, when = answer
                    answers[task] = min(when.timestamp(), answers.get(task, float("inf")))
        except DatabaseError as e:  # close_old_connections() itself
            if time.monotonic() - self._due_warned_at > 60:
                self._due_warned_at = time.monotonic()
                log.warning("scheduler %s cannot reach the database to look for due work (said once a minute): %s",
                            self._name, e)
        return answers

    def _send(self, task: str, due: float) -> bool:
        try:
            self.app.send_task(task, kwargs={"due": due}, expires=30)
            return True
        except BROKER_ERRORS as e:
            now = time.monotonic()
            if now - self._broker_warned_at > 60:
                self._broker_warned_at = now
                log.warning("scheduler %s cannot send %s while the broker is unreachable (said once a minute): "
                            "%s: %s", self._name, task, type(e).__name__, e)
            return False

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
    _due_warned_at = float("-inf")

    def close(self):
        try:
            close_old_connections()
            services.lease_release(name=LEASE, holder=self._holder)
        except DatabaseError as e:
            log.warning("scheduler %s could not hand its lease over: %s", self._name, e)
        self._node.stop()
        super().close()
