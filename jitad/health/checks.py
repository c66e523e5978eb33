"""Watchdog checks of jitad's own processes, its message broker and the domain controllers."""
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from jitad import broker, directory
from jitad.engine import selectors as engine
from jitad.engine.models import Heartbeat
from jitad.engine.node import broker_down_budget
from jitad.engine.services import heartbeats_forget
from jitad.engine.signals import broker_unreachable, directory_recovered
from jitad.notifications.models import Delivery, Notification
from jitad.notifications.services import (condition_raise, condition_resolve, conditions_open, deliveries_send_here,
                                          delivery_send)

log = logging.getLogger(__name__)

UNREACHABLE = "directory.unreachable"
BROKER_DOWN = "engine.broker_unreachable"


def _when(at) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def processes_check(**kwargs) -> None:
    """A worker or scheduler that stopped reporting without a clean shutdown is an alert; so is none left."""
    silent = timedelta(seconds=settings.JITAD_PROCESS_SILENT_SECONDS)
    heartbeats_forget(older_than=timedelta(hours=settings.JITAD_PROCESS_FORGET_HOURS))
    dead = {h.node: h for h in engine.heartbeats_dead(silent_for=silent)}
    for node, h in dead.items():
        condition_raise(
            key=f"process.dead:{node}", event="engine.process_dead", severity=Notification.Severity.WARNING,
            subject=f"jitad {h.role} {node} stopped reporting",
            body=(f"The {h.role} {node} (pid {h.pid} on {h.hostname or 'an unknown host'}) last reported at "
                  f"{_when(h.seen_at)} and did not shut down cleanly: it died, hangs, or lost the database.\n"
                  "The other processes carry on (sweeps move to another scheduler, claimed work lapses to "
                  "another worker within a lease). Restart it, or find out why it stopped."),
        )
    for c in conditions_open(prefix="process.dead:"):
        node = c.key.split(":", 1)[1]
        if node not in dead:
            condition_resolve(key=c.key, event="engine.process_back", subject=c.subject,
                              body=f"{node} reports again, stopped cleanly, or was forgotten after "
                                   f"{settings.JITAD_PROCESS_FORGET_HOURS} h.")
    for role, key, consequence in (
        (Heartbeat.Role.WORKER, "engine.no_worker", "Nothing applies or revokes grants and no alert is delivered by a "
                                                   "worker until one runs again."),
        (Heartbeat.Role.SCHEDULER, "engine.no_scheduler", "No sweep, no reconcile: expired grants are not revoked "
                                                          "until a scheduler runs again."),
    ):
        known = Heartbeat.objects.filter(role=role).exists()
        alive = engine.heartbeats_alive(within=silent, role=role)
        if known and not alive:
            note = condition_raise(key=key, event=key, subject=f"No jitad {role} is running",
                                   body=f"No {role} has reported for {settings.JITAD_PROCESS_SILENT_SECONDS:g} s. "
                                        + consequence)
            if role == Heartbeat.Role.WORKER and note is not None:
                _deliver_here(note)  # no worker will send it
        else:
            condition_resolve(key=key, event=f"{key}.resolved", subject=f"No jitad {role} is running",
                              body=f"{len(alive)} {role}(s) report again: " + ", ".join(h.node for h in alive))


def queues_check(**kwargs) -> None:
    """A queue that no live worker consumes is an alert (its work would wait for ever); resolved when one does."""
    silent = timedelta(seconds=settings.JITAD_PROCESS_SILENT_SECONDS)
    workers = [h for h in engine.heartbeats_alive(within=silent, role=Heartbeat.Role.WORKER) if h.queue_names]
    if not workers:
        return  # no worker at all is its own alert; workers that do not say what they consume tell nothing
    served = {q for h in workers for q in h.queue_names}
    for queue in (q.name for q in settings.CELERY_TASK_QUEUES):
        key = f"engine.queue_unserved:{queue}"
        subject = f"No jitad worker consumes the '{queue}' queue"
        if queue in served:
            condition_resolve(key=key, event="engine.queue_served", subject=subject,
                              body=f"The '{queue}' queue is consumed again by "
                                   + ", ".join(h.node for h in workers if queue in h.queue_names) + ".")
            continue
        note = condition_raise(
            key=key, event="engine.queue_unserved", subject=subject,
            body=(f"{QUEUE_WORK.get(queue, 'Its tasks')} wait in the broker until a worker consumes '{queue}'.\n"
                  "Workers reporting: " + "; ".join(f"{h.node} (-Q {h.queues})" for h in workers) + ".\n"
                  "Start a worker with -Q including it (ops/README.md, Processes), or one without -Q."),
        )
        if queue == NOTIFICATIONS_QUEUE and note is not None:
            _deliver_here(note)  # this very alert would otherwise wait in the queue nobody reads


NOTIFICATIONS_QUEUE = "notifications"
QUEUE_WORK = {
    "celery": "Grants, revocations, sweeps and reconciles",
    "notifications": "Alerts, approval requests and every other notification",
    "hosts": "Checks on servers that revocations took effect, and standing-admin scans",
}


def _deliver_here(note: Notification) -> None:
    """Send a notification from this process: with no worker alive, nobody else will."""
    transaction.on_commit(lambda: [delivery_send(delivery_id=d_id) for d_id in
                                   note.deliveries.filter(state=Delivery.State.PENDING).values_list("id", flat=True)])


def directory_unreachable_raise(*, detail: str) -> None:
    """Open (or count) the one condition for "no DC answers": the watchdog's probe and the reconciler raise it.

    The watchdog resolves it when a DC answers its probe again.
    """
    condition_raise(
        key=UNREACHABLE, event=UNREACHABLE,
        subject="No domain controller answers jitad",
        body=("Grants wait to be applied and revocations wait to be done, and the reconciler does not check the "
              "JIT groups; jitad retries them the moment a domain controller answers.\n" + detail),
    )


def directory_check(**kwargs) -> None:
    """Each DC that stops answering is an alert; none answering is a critical one, and its end retries at once."""
    if not settings.JITAD_LDAP_URLS:
        return
    results = directory.probe_each(deadline=settings.JITAD_DC_PROBE_TIMEOUT)
    down = {url: why for url, why in results.items() if why}
    if down and len(down) == len(results):
        directory_unreachable_raise(detail="\n".join(f"  {url}: {why}" for url, why in down.items()))
        return
    if condition_resolve(key=UNREACHABLE, event=f"{UNREACHABLE}.resolved", subject="No domain controller answers jitad",
                         body="A domain controller answers again: waiting grants and revocations are retried now."):
        directory_recovered.send_robust(sender=directory_check)
    for url, why in down.items():
        condition_raise(key=f"directory.dc_down:{url}"[:200], event="directory.dc_down",
                        severity=Notification.Severity.WARNING,
                        subject=f"Domain controller {url} does not answer jitad",
                        body=f"{url}: {why}\njitad uses the other domain controllers meanwhile.")
    for c in conditions_open(prefix="directory.dc_down:"):
        url = c.key.split(":", 1)[1]
        if url not in down:
            condition_resolve(key=c.key, event="directory.dc_back", subject=c.subject, body=f"{url} answers again.")


def broker_check(**kwargs) -> None:
    """A broker that does not answer is a critical alert, and this process does the most urgent work meanwhile.

    Sends to a broker that is down fail quietly by design (the database is the source of
    truth), so this is where the outage is heard. While it lasts, every watchdog run does
    what the workers cannot be told to do: the domains' urgent work (due revocations,
    through the engine's ``broker_unreachable`` signal), then alerts to the security
    channel, each within its share of the run's budget. Resolved once the broker answers.
    """
    why = broker.probe(deadline=settings.JITAD_BROKER_PROBE_TIMEOUT)
    subject = "jitad's message broker does not answer"
    if not why:
        condition_resolve(key=BROKER_DOWN, event=f"{BROKER_DOWN}.resolved", subject=subject,
                          body="The broker answers again: the workers take sweeps, grants, revocations and alerts over "
                               "again, and what waited is picked up by the next sweep.")
        return
    start, budget = time.monotonic(), broker_down_budget()
    condition_raise(
        key=BROKER_DOWN, event=BROKER_DOWN, subject=subject,
        body=(f"{why}\n"
              "No sweep, grant, revocation or alert reaches a worker while it lasts. Meanwhile the watchdog revokes "
              f"due grants and sends alerts from its own process, every {settings.JITAD_WATCH_INTERVAL:g} s; new "
              "grants and other messages wait for the broker. Bring the broker back or fix CELERY_BROKER_URL "
              "(ops/README.md)."),
    )
    for receiver, result in broker_unreachable.send_robust(sender=broker_check, until=start + 0.7 * budget):
        if isinstance(result, Exception):
            log.error("work during a broker outage by %s failed: %s", getattr(receiver, "__qualname__", receiver),
                      result, exc_info=result)
    deliveries_send_here(until=start + budget)
