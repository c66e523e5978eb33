"""Celery: the broker (embedded filesystem transport or Redis), the queues, task routes, and beat."""
from kombu import Exchange, Queue

from .env import PRODUCTION, VAR_DIR, env, refuse

# The broker is only a wake-up call; the database is the source of truth. The embedded
# default ("jitadfs://", jitad/broker.py) is kombu's filesystem transport with atomic
# writes: no server, works for web + worker + beat on one machine.
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="jitadfs://")
if PRODUCTION and "CELERY_BROKER_URL" not in env:
    refuse("CELERY_BROKER_URL must be set in production")
if CELERY_BROKER_URL.startswith(("jitadfs://", "filesystem://")):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The filesystem transport polls; 1 s (kombu's default) would add up to a second
        # to every grant and revocation.
        "polling_interval": env.float("JITAD_BROKER_POLL_SECONDS", default=0.1),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        # kombu's Redis transport, except that losing Redis no longer stops the worker (jitad/broker.py).
        CELERY_BROKER_TRANSPORT = "jitad.broker:RedisTransport"
        # A Redis that vanishes without closing the connection (failover, a firewall's idle
        # timeout, a black-holed host) fails a send within JITAD_BROKER_TIMEOUT instead of
        # hanging a page, a sweep or the watchdog for ever (kombu waits for ever by default).
        _broker_timeout = env.float("JITAD_BROKER_TIMEOUT", default=10.0)
        CELERY_BROKER_TRANSPORT_OPTIONS |= {"socket_timeout": _broker_timeout,
                                            "socket_connect_timeout": min(5.0, _broker_timeout)}
# Two queues: "celery" for the grant engine (apply, revoke, sweep, sync) and
# "notifications" for deliveries, whose destinations may hang for JITAD_DELIVERY_TIMEOUT.
# Production runs a worker per queue (`-Q celery`, `-Q notifications`, ops/README.md) so
# a hung chat service never holds the processes a revocation needs. Both are declared
# here, so a worker started without -Q consumes both: nothing is ever left unsent.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("celery", "notifications", "hosts")
]
# "hosts": checks of revocations on servers, the standing-admin scans and the session-evidence reads, which may wait
# JITAD_WINRM_DEADLINE on a hung server; production serves it from the notifications
# worker (`-Q notifications,hosts`) so the engine's processes stay free for revocations.
CELERY_TASK_ROUTES = {
    "jitad.notifications.*": {"queue": "notifications"},
    "jitad.elevation.grants_check_revoked": {"queue": "hosts"},
    "jitad.elevation.hosts_scan": {"queue": "hosts"},
    "jitad.elevation.host_scan": {"queue": "hosts"},
    "jitad.elevation.evidence_pull": {"queue": "hosts"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A removal claimed ahead of its grant's end runs at the end (a message with an ETA,
# JITAD_REVOKE_LEAD_SECONDS): where the worker's ETA timer is a thread (the filesystem broker), it
# looks every this many seconds, not every second (Celery's default). Redis's event loop is exact.
CELERY_WORKER_TIMER_PRECISION = 0.02
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker that loses the broker keeps trying for as long as the outage lasts (Celery gives up
# after 100 tries by default, and the process exits): the watchdog alerts meanwhile.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Without this Celery's Django fixup closes every database connection before and after each
# task; jitad's own hooks keep them instead, by age and health (jitad/engine/worker.py). The
# fixup still closes them every this many tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat is elected (jitad/engine/scheduler.py): run it in every engine worker (`-B`) or as
# `celery beat` on several machines; the holder of a database lease sends, and another
# instance takes over within JITAD_SCHEDULER_LEASE_SECONDS when it dies.
CELERY_BEAT_SCHEDULER = "jitad.engine.scheduler:ElectedScheduler"
