"""Eligibility reviews: how often the sweep opens, reminds, closes and applies (docs/approvals.md)."""
from .env import env, refuse

# Seconds between review sweeps. Campaign cadences and deadlines are in minutes (the policy
# file); a sweep a minute apart is on time for them. Removals that failed are retried this often.
JITAD_REVIEW_SWEEP_INTERVAL = env.float("JITAD_REVIEW_SWEEP_INTERVAL", default=60.0)
if JITAD_REVIEW_SWEEP_INTERVAL <= 0:
    refuse("JITAD_REVIEW_SWEEP_INTERVAL must be above 0 (seconds between review sweeps)")
