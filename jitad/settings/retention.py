"""Retention: how long closed records and audit events are kept (0: forever, the default). docs/access-history.md."""
from .env import env, refuse

# Ended grants (with their requests and approvals), requests closed without a grant, finished
# host scans and resolved standing findings, notifications whose deliveries are done, closed held
# removals and closed break-glass checkouts older than this many days are deleted by the daily
# prune (`manage.py jitad_prune`). Live and open rows are never deleted.
JITAD_RETENTION_DAYS = env.int("JITAD_RETENTION_DAYS", default=0)
# Audit events older than this many days are deleted, oldest first, behind a checkpoint that keeps
# the rest of the chain verifiable (never one a SIEM destination has not received yet).
JITAD_AUDIT_RETENTION_DAYS = env.int("JITAD_AUDIT_RETENTION_DAYS", default=0)
# The prune runs every this many seconds (daily by default).
JITAD_RETENTION_INTERVAL = env.float("JITAD_RETENTION_INTERVAL", default=86400.0)
RETENTION_MIN_DAYS = 30
for _name, _value in (("JITAD_RETENTION_DAYS", JITAD_RETENTION_DAYS),
                      ("JITAD_AUDIT_RETENTION_DAYS", JITAD_AUDIT_RETENTION_DAYS)):
    if _value != 0 and _value < RETENTION_MIN_DAYS:
        refuse(f"{_name} must be 0 (keep forever) or at least {RETENTION_MIN_DAYS} days")
if JITAD_RETENTION_INTERVAL < 60:
    refuse("JITAD_RETENTION_INTERVAL must be at least 60 seconds")
