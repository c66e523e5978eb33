"""SIEM streaming of the audit chain (docs/siem.md): destinations, batches, retries, the lag alert."""
import os
import re
from urllib.parse import urlsplit

from .env import env, refuse

# --- SIEM destinations (jitad.audit.siem; docs/siem.md) -----------------------------
# JITAD_SIEM_<NAME>_URL=syslog+tls://host:6514 (RFC 5424 over TLS, octet-counted) or
# https://host:8088/services/collector/event (Splunk HEC-compatible JSON); per destination
# _FORMAT (syslog: cef | json; https: hec | ocsf), _TOKEN (HEC token, never logged) and
# _CA_FILE (the CA bundle that signs the receiver's certificate; the system's otherwise).
# TLS certificate and host name validation is always on.
_FORMATS = {"syslog+tls": ("cef", "json"), "https": ("hec", "ocsf")}
_PREFIX, _URL = "JITAD_SIEM_", "_URL"
_NAME = re.compile(rf"^{_PREFIX}([A-Z0-9][A-Z0-9_]*){_URL}$")


def _destinations(environ, refuse=refuse) -> dict:
    """The destinations the variables describe; each one refused (``refuse``, env.py) is left out."""
    found = {}
    for key, url in sorted(environ.items()):
        match = _NAME.match(key)
        if not match or not url.strip():
            continue
        prefix = f"{_PREFIX}{match.group(1)}_"
        name = match.group(1).lower().replace("_", "-")
        parts = urlsplit(url.strip())
        if parts.scheme not in _FORMATS or not parts.hostname:
            refuse(f"{key} must be syslog+tls://host:port or https://host:port/path")
            continue
        if parts.username or parts.password:
            refuse(f"{key} must not carry credentials: use {prefix}TOKEN")
            continue
        allowed = _FORMATS[parts.scheme]
        fmt = environ.get(prefix + "FORMAT", allowed[0]).strip().lower()
        ca_file = environ.get(prefix + "CA_FILE", "").strip()
        if fmt not in allowed:
            refuse(f"{prefix}FORMAT must be one of {', '.join(allowed)} for {parts.scheme}")
        if ca_file and not os.path.isfile(ca_file):
            refuse(f"{prefix}CA_FILE={ca_file}: no such file")
        if fmt not in allowed or (ca_file and not os.path.isfile(ca_file)):
            continue
        found[name] = {
            "url": url.strip(),
            "transport": "syslog" if parts.scheme == "syslog+tls" else "https",
            "format": fmt,
            "token": environ.get(prefix + "TOKEN", ""),
            "ca_file": ca_file,
        }
    return found


JITAD_SIEM_DESTINATIONS = _destinations(os.environ)
# Events per send (one TLS write or one HEC POST), and how long one send may take.
JITAD_SIEM_BATCH = env.int("JITAD_SIEM_BATCH", default=500)
JITAD_SIEM_TIMEOUT = env.float("JITAD_SIEM_TIMEOUT", default=10.0)
# A failed send is retried with exponential backoff between these bounds, for ever.
JITAD_SIEM_RETRY_BASE_SECONDS = env.float("JITAD_SIEM_RETRY_BASE_SECONDS", default=2.0)
JITAD_SIEM_RETRY_MAX_SECONDS = env.float("JITAD_SIEM_RETRY_MAX_SECONDS", default=300.0)
# Beat sends what wake-ups missed and checks the lag this often; an alert goes out when
# the oldest unsent event is older than JITAD_SIEM_ALERT_LAG_SECONDS, and once more when caught up.
JITAD_SIEM_SWEEP_INTERVAL = env.float("JITAD_SIEM_SWEEP_INTERVAL", default=10.0)
JITAD_SIEM_ALERT_LAG_SECONDS = env.float("JITAD_SIEM_ALERT_LAG_SECONDS", default=300.0)
# syslog HOSTNAME and APP-NAME fields.
JITAD_SIEM_HOSTNAME = env.str("JITAD_SIEM_HOSTNAME", default="") or os.uname().nodename
