"""Figures /metrics reads at scrape time from what jitad records anyway: pulses, heartbeats, open alerts,
deliveries, the SIEM stream, the broker's queues, and the readiness checks.

Registered with :func:`jitad.metrics.figures_register` by this app's ``AppConfig.ready``. Each
is a short read by index (the tables behind them stay small or are read by an index range),
so a scrape every 15 s from two Prometheus servers costs the database little.
"""
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

import jitad
from jitad import broker
from jitad.audit.selectors import siem_destinations
from jitad.engine import selectors as engine
from jitad.engine.models import Heartbeat, Pulse
from jitad.notifications.models import AlertCondition, Delivery

from .readiness import readiness, siem_oldest_unsent


def _gauge(name: str, doc: str, labels=(), rows=()) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=list(labels))
    for *values, value in rows:
        g.add_metric([str(v) for v in values], value)
    return g


def engine_figures():
    """When each periodic piece of work last ran to its end, and how many processes report."""
    yield _gauge("jitad_pulse_timestamp_seconds",
                 "When a periodic piece of work last ran to its end (Unix time): sweep, reconcile, group-watch, ...",
                 ["pulse"], [(name, at.timestamp()) for name, at in Pulse.objects.values_list("name", "at")])
    alive = engine.heartbeats_alive(within=timedelta(seconds=settings.JITAD_PROCESS_SILENT_SECONDS))
    yield _gauge("jitad_processes_alive", "Workers and schedulers that reported within JITAD_PROCESS_SILENT_SECONDS",
                 ["role"], [(role, sum(1 for h in alive if h.role == role)) for role in Heartbeat.Role.values])


def alert_figures():
    """Conditions alerted and not resolved yet (one per cause: no DC, broker down, revocations failing...)."""
    rows = (AlertCondition.objects.filter(resolved_at__isnull=True).order_by().values("event", "severity")
            .annotate(n=Count("id")))
    yield _gauge("jitad_alert_conditions_open", "Alerted conditions still open, by event and severity",
                 ["event", "severity"], [(r["event"], r["severity"], r["n"]) for r in rows])


def delivery_figures():
    """The notifications backlog: deliveries waiting and failed, and how long the oldest due one has waited."""
    now = timezone.now()
    counts = dict(Delivery.objects.filter(state__in=[Delivery.State.PENDING, Delivery.State.FAILED]).order_by()
                  .values_list("state").annotate(n=Count("id")))
    yield _gauge("jitad_deliveries", "Deliveries pending (to send or to retry) and failed (out of attempts)",
                 ["state"], [(s, counts.get(s, 0)) for s in (Delivery.State.PENDING, Delivery.State.FAILED)])
    oldest = Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now).aggregate(
        at=Min("next_attempt_at"))["at"]
    yield _gauge("jitad_deliveries_oldest_due_seconds", "How long the oldest delivery that is due has waited (0: none)",
                 rows=[(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,)])


def siem_figures():
    """How far behind each SIEM destination is: events not sent, and the oldest one's age."""
    if not settings.JITAD_SIEM_DESTINATIONS:
        return
    now = timezone.now()
    lag, age = [], []
    for d in siem_destinations():
        lag.append((d["name"], d["lag_events"]))
        oldest = siem_oldest_unsent(d["last_seq"], d["head_seq"])
        age.append((d["name"], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0))
    yield _gauge("jitad_siem_lag_events", "Audit events not yet sent to a SIEM destination (the outbox)",
                 ["destination"], lag)
    yield _gauge("jitad_siem_oldest_unsent_seconds", "Age of the oldest audit event a SIEM destination has not "
                 "been sent (0: none)", ["destination"], age)


def broker_figures():
    """Messages waiting in each queue of the broker (none reported while it does not answer)."""
    depths = broker.queue_depths([q.name for q in settings.CELERY_TASK_QUEUES], deadline=settings.JITAD_READY_TIMEOUT)
    yield _gauge("jitad_queue_messages", "Messages waiting in a broker queue, not yet taken by a worker",
                 ["queue"], sorted((depths or {}).items()))


def readiness_figures():
    """The /readyz checks as seen from this web process (the DC and broker answers cached as there), and the version."""
    yield _gauge("jitad_ready", "1 when a /readyz check passes, 0 when it fails", ["check"],
                 [(c.name, int(c.ok)) for c in readiness()])
    info = InfoMetricFamily("jitad_build", "The jitad release this process runs")
    info.add_metric([], {"version": jitad.__version__})
    yield info
