"""The Celery application: web enqueues ids, the worker acts, beat drives the sweeper."""
import os

from celery import Celery
from celery.signals import worker_process_init

from . import broker  # noqa: F401  (registers the jitadfs:// transport)
from . import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")

app = Celery("jitad")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule(sender, **kwargs):
    """Beat entries, with intervals from settings so tests and demos can run them fast."""
    from django.conf import settings

    sender.add_periodic_task(settings.JITAD_SWEEP_INTERVAL, sender.signature("jitad.elevation.sweep"), name="sweep")
    sender.add_periodic_task(
        settings.JITAD_RECONCILE_INTERVAL, sender.signature("jitad.elevation.reconcile"), name="reconcile"
    )
    if settings.JITAD_GROUP_WATCH_INTERVAL > 0:
        # The reconciler's change feed, beside the sweep on the engine's queue (docs/reconciler.md): a tick
        # waiting behind other work for longer than two intervals is dropped, the next one does its job.
        interval = settings.JITAD_GROUP_WATCH_INTERVAL
        sender.add_periodic_task(
            interval, sender.signature("jitad.elevation.group_watch", options={"expires": max(2.0, 2 * interval)}),
            name="group-watch",
        )
    sender.add_periodic_task(
        settings.JITAD_PENDING_CHECK_INTERVAL,
        sender.signature("jitad.elevation.expire_pending"),
        name="expire-pending",
    )
    sender.add_periodic_task(
        settings.JITAD_ESCALATION_CHECK_INTERVAL, sender.signature("jitad.elevation.escalate"), name="escalate-stages"
    )
    sender.add_periodic_task(
        settings.JITAD_EXPIRY_CHECK_INTERVAL, sender.signature("jitad.elevation.warn_expiring"), name="warn-expiring"
    )
    sender.add_periodic_task(
        settings.JITAD_DELIVERY_CHECK_INTERVAL, sender.signature("jitad.notifications.resend"), name="resend-deliveries"
    )
    sender.add_periodic_task(
        settings.JITAD_DELIVERY_CHECK_INTERVAL, sender.signature("jitad.notifications.digests"), name="alert-digests"
    )
    sender.add_periodic_task(
        settings.JITAD_BREAKGLASS_SWEEP_INTERVAL, sender.signature("jitad.breakglass.sweep"), name="breakglass-sweep"
    )
    if settings.JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL > 0:
        sender.add_periodic_task(
            settings.JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL, sender.signature("jitad.breakglass.seals_check"),
            name="breakglass-seal-check",
        )
    if settings.JITAD_SIEM_DESTINATIONS:
        # Beside the deliveries: a SIEM that hangs for JITAD_SIEM_TIMEOUT never holds the engine's processes.
        sender.add_periodic_task(
            settings.JITAD_SIEM_SWEEP_INTERVAL,
            sender.signature("jitad.audit.siem_sweep", options={"queue": "notifications"}), name="siem-sweep",
        )
    if settings.JITAD_REPORT_SNAPSHOT_INTERVAL > 0:  # daily figures; a finished day is recorded once
        sender.add_periodic_task(
            settings.JITAD_REPORT_SNAPSHOT_INTERVAL, sender.signature("jitad.reports.snapshots_record"),
            name="report-snapshots",
        )
    if settings.JITAD_HOST_SCAN_INTERVAL > 0:
        sender.add_periodic_task(
            settings.JITAD_HOST_SCAN_INTERVAL, sender.signature("jitad.elevation.hosts_scan"), name="standing-admin-scan"
        )
    if settings.JITAD_EVIDENCE_SWEEP_INTERVAL > 0:
        sender.add_periodic_task(
            settings.JITAD_EVIDENCE_SWEEP_INTERVAL, sender.signature("jitad.elevation.evidence_sweep"),
            name="session-evidence",
        )
    sender.add_periodic_task(
        settings.JITAD_REVIEW_SWEEP_INTERVAL, sender.signature("jitad.reviews.sweep"), name="review-sweep"
    )
    sender.add_periodic_task(settings.JITAD_RETENTION_INTERVAL, sender.signature("jitad.reports.prune"), name="retention-prune")
    if settings.JITAD_DIRECTORY_SYNC_INTERVAL > 0:
        sender.add_periodic_task(
            settings.JITAD_DIRECTORY_SYNC_INTERVAL, sender.signature("jitad.accounts.refresh_from_directory"),
            name="directory-sync",
        )
    # Periodic work logs nothing at INFO when it did nothing (jitad/logs.py); nor do the scheduler's
    # wake-ups of the sweep at a grant's end, which find nothing when a sweep got there first.
    logs.periodic_tasks.update(entry["task"] for entry in sender.conf.beat_schedule.values())
    logs.periodic_tasks.update({"jitad.elevation.sweep", "jitad.elevation.revoke_ahead"})


@worker_process_init.connect
def _warm_directory_session(**kwargs):
    """Each pool process binds its LDAPS session as it starts (bounded: at most about a second,
    the first DC only, never fatal), so the first grant it applies does not wait for a bind."""
    from jitad import directory

    directory.session_warm()
