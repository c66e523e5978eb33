"""This process's part in keeping jitad alive: a heartbeat, and the watchdog when it holds the watch lease.

Every worker and every scheduler runs a Node. Heartbeats let the watchdog tell a process
that died (silent, never said goodbye) from one stopped on purpose. The watchdog itself is
single-flight through the lease ``watch``: whichever live process holds it runs the checks,
so it survives the death of any one process, scheduler included.
"""
import logging
import os
import socket
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from . import services, signals

log = logging.getLogger(__name__)

WATCH_LEASE = "watch"


def node_name(role: str) -> str:
    """``<role>@<JITAD_NODE_NAME or host name>``: stable across restarts of the same process."""
    return f"{role}@{settings.JITAD_NODE_NAME or socket.gethostname()}"


def broker_down_budget() -> float:
    """Seconds one watchdog run may spend on the workers' most urgent work while the broker does not answer."""
    return max(5.0, 2 * settings.JITAD_WATCH_INTERVAL)


class Node:
    """Heartbeat and watcher threads for one long-running process."""

    def __init__(self, *, node: str, role: str, queues: tuple[str, ...] = ()):
        self.node = node
        self.role = role
        self.queues = ",".join(sorted(set(queues)))
        self.pid = os.getpid()
        self.hostname = socket.gethostname()
        self.holder = f"{node}:{self.pid}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Node":
        for name, target in (("heartbeat", self._heartbeat_loop), ("watcher", self._watch_loop)):
            t = threading.Thread(target=target, name=f"jitad-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("%s %s reporting (pid %s)", self.role, self.node, self.pid)
        return self

    def stop(self) -> None:
        """A clean shutdown: say goodbye and hand the watch over at once."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        try:
            close_old_connections()
            services.heartbeat_stop(node=self.node, pid=self.pid)
            services.lease_release(name=WATCH_LEASE, holder=self.holder)
        except DatabaseError as e:
            log.warning("%s could not record its shutdown: %s", self.node, e)
        finally:
            connection.close()

    def beat(self) -> None:
        services.heartbeat_beat(node=self.node, role=self.role, hostname=self.hostname, pid=self.pid,
                                queues=self.queues)

    def watch_once(self) -> bool:
        """Run the watchdog if this process holds (or takes) the watch lease; True if it ran."""
        interval = settings.JITAD_WATCH_INTERVAL
        # Long enough for a run's slowest path: a DC probe, a broker probe, and the work done
        # here while the broker is down (its budget, plus one alert send started just before
        # the budget ran out); a holder that dies still hands over within it.
        seconds = max(3 * interval, interval + settings.JITAD_DC_PROBE_TIMEOUT + settings.JITAD_BROKER_PROBE_TIMEOUT
                      + broker_down_budget() + settings.JITAD_DELIVERY_TIMEOUT + 5)
        if not services.lease_take(name=WATCH_LEASE, holder=self.holder, seconds=seconds):
            return False
        for signal in (signals.watch, signals.watch_finished):
            for receiver, result in signal.send_robust(sender=Node):
                if isinstance(result, Exception):
                    log.error("watchdog check %s failed: %s", getattr(receiver, "__qualname__", receiver), result,
                              exc_info=result)
        return True

    def _heartbeat_loop(self) -> None:
        self._loop(settings.JITAD_HEARTBEAT_SECONDS, self.beat, "heartbeat")

    def _watch_loop(self) -> None:
        self._loop(settings.JITAD_WATCH_INTERVAL, self.watch_once, "watchdog")

    def _loop(self, every: float, step, what: str) -> None:
        while not self._stop.is_set():
            try:
                close_old_connections()
                step()
            except DatabaseError as e:  # the database is away: nothing to record until it is back
                log.warning("%s of %s failed: %s", what, self.node, e)
                connection.close()
            except Exception:  # noqa: BLE001 - a bug here must not end the thread for good
                log.exception("%s of %s failed", what, self.node)
            self._stop.wait(every)
        connection.close()
