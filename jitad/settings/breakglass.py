"""Break-glass: generated passwords, checkout windows, the seal check, what a checkout must say, runbooks."""
from pathlib import Path

from .env import BASE_DIR, env

# --- Break-glass (jitad/breakglass/, docs/breakglass.md) -----------------------------
# Length of the random passwords jitad sets (every character class; nothing that reads alike on paper).
JITAD_BREAKGLASS_PASSWORD_LENGTH = env.int("JITAD_BREAKGLASS_PASSWORD_LENGTH", default=32)
# A checkout waits this long for its approvals, then expires; an approved envelope must be printed within
# JITAD_BREAKGLASS_ENVELOPE_MINUTES.
JITAD_BREAKGLASS_PENDING_MINUTES = env.int("JITAD_BREAKGLASS_PENDING_MINUTES", default=60)
JITAD_BREAKGLASS_ENVELOPE_MINUTES = env.int("JITAD_BREAKGLASS_ENVELOPE_MINUTES", default=30)
# Beat drives break-glass work this often (windows ending, rotations due, retries), and checks each
# sealed account in AD every JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL seconds (0: never): a password
# changed or an account enabled outside jitad breaks the seal (alerted; the password is rotated).
JITAD_BREAKGLASS_SWEEP_INTERVAL = env.float("JITAD_BREAKGLASS_SWEEP_INTERVAL", default=5.0)
JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL = env.float("JITAD_BREAKGLASS_SEAL_CHECK_INTERVAL", default=300.0)
# What a checkout must say: an incident reference matching this pattern (blank: any), a reason this long.
JITAD_BREAKGLASS_INCIDENT_PATTERN = env.str("JITAD_BREAKGLASS_INCIDENT_PATTERN", default="")
JITAD_BREAKGLASS_REASON_MIN = env.int("JITAD_BREAKGLASS_REASON_MIN", default=10)
# Runbooks: markdown files with a front-matter header (runbooks/README.md).
JITAD_RUNBOOK_DIR = Path(env.str("JITAD_RUNBOOK_DIR", default=str(BASE_DIR / "runbooks")))
