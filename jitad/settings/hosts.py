"""Windows hosts over WinRM: credential profiles, timeouts, verification on the server, the standing-admin scan."""
import os
from pathlib import Path

from .env import env, refuse

# --- Windows hosts (WinRM; jitad/hosts/, docs/hosts.md) ---------------------------
# Credentials and trust come in profiles; a target names its profile (blank: "default").
# Default profile: JITAD_WINRM_USERNAME, JITAD_WINRM_PASSWORD, JITAD_WINRM_CA_BUNDLE,
# JITAD_WINRM_CERT_PEM, JITAD_WINRM_CERT_KEY_PEM. Another profile <NAME>: the same with
# JITAD_WINRM_PROFILE_<NAME>_ in front (USERNAME, PASSWORD, CA_BUNDLE, CERT_PEM, CERT_KEY_PEM).
# A *_FILE variant of PASSWORD reads the secret from a file (container secrets).
# NTLM is refused unless the target's profile says ALLOW_NTLM=true (JITAD_WINRM_ALLOW_NTLM for the
# default profile): it is deprecated and being switched off in Windows; every target that still uses
# it is named in the standing-admin report. Kerberos logs on as JITAD_KERBEROS_PRINCIPAL (settings/kerberos.py).
def _winrm_profile(prefix: str) -> dict:
    out = {}
    for key in ("USERNAME", "PASSWORD", "CA_BUNDLE", "CERT_PEM", "CERT_KEY_PEM"):
        value = os.environ.get(prefix + key, "")
        if key == "PASSWORD" and not value and os.environ.get(prefix + "PASSWORD_FILE"):
            try:
                value = Path(os.environ[prefix + "PASSWORD_FILE"]).read_text().strip()
            except OSError as e:
                refuse(f"{prefix}PASSWORD_FILE={os.environ[prefix + 'PASSWORD_FILE']}: cannot be read ({e.strerror})")
        out[key.lower()] = value
    allow = os.environ.get(prefix + "ALLOW_NTLM", "").strip().lower()
    if allow not in ("", "true", "false", "1", "0", "yes", "no", "on", "off"):
        refuse(f"{prefix}ALLOW_NTLM={allow!r}: true or false")
    out["allow_ntlm"] = allow in ("true", "1", "yes", "on")
    return out


JITAD_WINRM_PROFILES = {"default": _winrm_profile("JITAD_WINRM_")}
for _key in list(os.environ):
    _suffix = next((s for s in ("_USERNAME", "_CERT_PEM", "_ALLOW_NTLM") if _key.endswith(s)), "")
    if _key.startswith("JITAD_WINRM_PROFILE_") and _suffix:
        _name = _key[len("JITAD_WINRM_PROFILE_"):-len(_suffix)]
        if _name:
            JITAD_WINRM_PROFILES[_name.lower().replace("_", "-")] = _winrm_profile(f"JITAD_WINRM_PROFILE_{_name}_")
# Every WinRM call: connect and read timeouts per HTTP request, the WS-Man operation
# timeout (a long Receive answers within it), and an overall deadline for the whole call.
JITAD_WINRM_CONNECT_TIMEOUT = env.float("JITAD_WINRM_CONNECT_TIMEOUT", default=5.0)
JITAD_WINRM_READ_TIMEOUT = env.float("JITAD_WINRM_READ_TIMEOUT", default=15.0)
JITAD_WINRM_OPERATION_TIMEOUT = env.float("JITAD_WINRM_OPERATION_TIMEOUT", default=10.0)
JITAD_WINRM_DEADLINE = env.float("JITAD_WINRM_DEADLINE", default=45.0)
# WinRM message encryption (Kerberos or NTLM sealing of every WS-Man message): "auto" seals over
# http:// and leaves https:// to TLS; "always" seals over https:// too. Over http:// it is never off.
JITAD_WINRM_MESSAGE_ENCRYPTION = env.str("JITAD_WINRM_MESSAGE_ENCRYPTION", default="auto").strip().lower()
if JITAD_WINRM_MESSAGE_ENCRYPTION not in ("auto", "always"):
    refuse(f"JITAD_WINRM_MESSAGE_ENCRYPTION={JITAD_WINRM_MESSAGE_ENCRYPTION!r}: auto or always")
    JITAD_WINRM_MESSAGE_ENCRYPTION = "always"
# A grant whose right does not show on the server (GPO not applied yet, host down) is
# "unverified" and re-checked with backoff for this long, then left unverified (alerted).
JITAD_HOST_VERIFY_WINDOW_MINUTES = env.float("JITAD_HOST_VERIFY_WINDOW_MINUTES", default=30.0)
# The standing-admin scan: every this many seconds (0: never), members of each server's
# local Administrators that are neither its JIT group nor allowed here are reported.
# Entries are SIDs, or "*-<RID>" for a well-known RID on any machine or domain
# ("*-500": each machine's built-in Administrator account).
JITAD_HOST_SCAN_INTERVAL = env.float("JITAD_HOST_SCAN_INTERVAL", default=3600.0)
JITAD_HOST_ALLOWED_ADMINS = env.list("JITAD_HOST_ALLOWED_ADMINS", default=["*-500"])
# Session evidence (docs/hosts.md, "Session evidence"): the Security log events of each grant's
# accounts on WinRM-managed servers, read every JITAD_EVIDENCE_INTERVAL_SECONDS during the grant
# and until JITAD_EVIDENCE_AFTER_MINUTES after its end; at most JITAD_EVIDENCE_MAX_EVENTS_PER_CALL
# events per call to a server and JITAD_EVIDENCE_MAX_EVENTS_PER_GRANT stored per grant. The sweep
# that finds due reads runs every JITAD_EVIDENCE_SWEEP_INTERVAL seconds (0: never collect).
JITAD_EVIDENCE_INTERVAL_SECONDS = max(1.0, env.float("JITAD_EVIDENCE_INTERVAL_SECONDS", default=300.0))
JITAD_EVIDENCE_AFTER_MINUTES = max(0.0, env.float("JITAD_EVIDENCE_AFTER_MINUTES", default=60.0))
JITAD_EVIDENCE_MAX_EVENTS_PER_CALL = min(5000, max(1, env.int("JITAD_EVIDENCE_MAX_EVENTS_PER_CALL", default=1000)))
JITAD_EVIDENCE_MAX_EVENTS_PER_GRANT = max(1, env.int("JITAD_EVIDENCE_MAX_EVENTS_PER_GRANT", default=5000))
JITAD_EVIDENCE_SWEEP_INTERVAL = max(0.0, env.float("JITAD_EVIDENCE_SWEEP_INTERVAL", default=60.0))
