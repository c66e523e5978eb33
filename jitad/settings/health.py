"""Watching jitad: /readyz (its checks, their time limit and thresholds), /metrics and who may read them.

ops/README.md, "Health and metrics", says what each check means. The log format
(JITAD_LOG_FORMAT) is in ``core`` with the rest of the logging.
"""
import ipaddress

from .env import env, refuse

_LOOPBACK = ["127.0.0.0/8", "::1"]


def _networks(name: str) -> list[str]:
    """The CIDR list in ``name``, checked here: a typo must not open (or close) an endpoint silently."""
    values = env.list(name, default=_LOOPBACK)
    good = []
    for value in values:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            refuse(f"{name}: {value!r} is not an IP address or network (CIDR)")
            continue
        good.append(value.strip())
    return [v for v in good if v]


# /readyz answers every caller with its status code (200 ready, 503 not) and which checks failed;
# callers from these networks also get each check's detail and jitad's version. The client address
# is the one the login throttle uses (X-Forwarded-For only from JITAD_TRUSTED_PROXIES).
JITAD_HEALTH_ALLOWED_NETWORKS = _networks("JITAD_HEALTH_ALLOWED_NETWORKS")
# Each network check (a DC, the broker) of /readyz gives up after this many seconds, and the probes
# run side by side: a DC or broker that hangs makes /readyz answer 503 within about this, never hang.
JITAD_READY_TIMEOUT = env.float("JITAD_READY_TIMEOUT", default=2.0)
if not 0 < JITAD_READY_TIMEOUT <= 30:
    refuse("JITAD_READY_TIMEOUT must be above 0 and at most 30 (seconds)")
# A web process reuses its last DC and broker answers for this many seconds: load balancers polling
# every web process every second cost the DC one bind per process and period, not one per poll. 0: ask every time.
JITAD_READY_CACHE_SECONDS = env.float("JITAD_READY_CACHE_SECONDS", default=5.0)
if JITAD_READY_CACHE_SECONDS < 0:
    refuse("JITAD_READY_CACHE_SECONDS must be 0 or more")
# Not ready while a delivery that is due has waited longer than this (the notifications workers are
# stopped, stuck, or far behind). The SIEM stream uses JITAD_SIEM_ALERT_LAG_SECONDS, the sweep
# JITAD_SWEEP_STALE_SECONDS: the same limits the watchdog alerts at.
JITAD_READY_DELIVERY_LAG_SECONDS = env.float("JITAD_READY_DELIVERY_LAG_SECONDS", default=300.0)

# /metrics (Prometheus): only callers from these networks, and with JITAD_METRICS_TOKEN set, only
# with "Authorization: Bearer <token>" (Prometheus: authorization.credentials_file).
JITAD_METRICS_ALLOWED_NETWORKS = _networks("JITAD_METRICS_ALLOWED_NETWORKS")
JITAD_METRICS_TOKEN = env.str("JITAD_METRICS_TOKEN", default="")
