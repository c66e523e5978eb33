"""The grant engine: sweeps, the reconciler's brake, claims and leases, redundancy and the watchdog,
retries, what the approval queue shows, sweep batches, and the policy file's size limit."""
from .env import env, refuse

# --- Engine ---------------------------------------------------------------------------
# The sweep runs when work falls due: the elected scheduler asks for the next grant end, retry
# or scheduled start every JITAD_WAKE_REFRESH_SECONDS (and right after each wake-up) and sends
# the sweep at that instant. The periodic sweep, every JITAD_SWEEP_INTERVAL seconds, is the
# safety net for what no instant announces (a dead worker's claim lapsing, a lost message).
JITAD_SWEEP_INTERVAL = env.float("JITAD_SWEEP_INTERVAL", default=5.0)
JITAD_WAKE_REFRESH_SECONDS = env.float("JITAD_WAKE_REFRESH_SECONDS", default=1.0)
if JITAD_SWEEP_INTERVAL <= 0:
    refuse("JITAD_SWEEP_INTERVAL must be above 0 (seconds between safety-net sweeps)")
if not 0 < JITAD_WAKE_REFRESH_SECONDS <= 60:
    refuse("JITAD_WAKE_REFRESH_SECONDS must be above 0 and at most 60 (seconds between looks "
           "at when the next grant ends)")
# A grant end the scheduler sees coming is claimed this many seconds before it, and its removal
# sent to run at the end itself (a message with an ETA): the claim and the broker's hop are done
# by then, and the removal is not late by them. Never early: the worker runs it at the end. 0: the
# end is claimed when it comes.
JITAD_REVOKE_LEAD_SECONDS = env.float("JITAD_REVOKE_LEAD_SECONDS", default=0.25)
if not 0 <= JITAD_REVOKE_LEAD_SECONDS <= 5:
    refuse("JITAD_REVOKE_LEAD_SECONDS must be between 0 (off) and 5 (seconds a grant end is "
           "claimed ahead)")
JITAD_RECONCILE_INTERVAL = env.float("JITAD_RECONCILE_INTERVAL", default=60.0)
# The group watch (docs/reconciler.md): every this many seconds the elected scheduler has the DC's
# change feed (DirSync) read, and the managed groups whose members changed are checked at once;
# 0 turns it off (out-of-band members are then found by the periodic reconcile only).
JITAD_GROUP_WATCH_INTERVAL = env.float("JITAD_GROUP_WATCH_INTERVAL", default=1.0)
if JITAD_GROUP_WATCH_INTERVAL < 0:
    refuse("JITAD_GROUP_WATCH_INTERVAL must be 0 (off) or a number of seconds")
JITAD_PENDING_CHECK_INTERVAL = env.float("JITAD_PENDING_CHECK_INTERVAL", default=30.0)
# Seconds between checks for approval stages left undecided past their escalation or timeout.
JITAD_ESCALATION_CHECK_INTERVAL = env.float("JITAD_ESCALATION_CHECK_INTERVAL", default=15.0)
# The reconciler's brake (docs/reconciler.md): one run removes at most
# max(JITAD_RECONCILE_MAX_REMOVE_MIN, JITAD_RECONCILE_MAX_REMOVE_SHARE × the group's members)
# from a group. Beyond that it removes none of them: it holds them, alerts once, and waits
# for an operator to confirm or discard (`manage.py jitad_held_removals`). A share of 1 turns
# the brake off.
JITAD_RECONCILE_MAX_REMOVE_SHARE = env.float("JITAD_RECONCILE_MAX_REMOVE_SHARE", default=0.5)
JITAD_RECONCILE_MAX_REMOVE_MIN = env.int("JITAD_RECONCILE_MAX_REMOVE_MIN", default=3)
if not 0 <= JITAD_RECONCILE_MAX_REMOVE_SHARE <= 1:
    refuse("JITAD_RECONCILE_MAX_REMOVE_SHARE must be between 0 and 1 (0.5 is half of a group)")
if JITAD_RECONCILE_MAX_REMOVE_MIN < 0:
    refuse("JITAD_RECONCILE_MAX_REMOVE_MIN must be 0 or more")
# Ephemeral accounts (docs/ephemeral.md): the reconciler deletes at most this many accounts no
# grant owns in one run (the next run takes the rest).
JITAD_EPHEMERAL_ORPHANS_PER_RUN = env.int("JITAD_EPHEMERAL_ORPHANS_PER_RUN", default=50)
# A claimed grant is worked by one task, which renews its claim every third of this while
# it works (jitad/engine/keeper.py); if the task vanishes (worker killed), the claim lapses
# after this many seconds and the sweeper hands the grant to another worker. A claim is
# renewed for at most JITAD_CLAIM_MAX_HOLD_SECONDS.
JITAD_LEASE_SECONDS = env.float("JITAD_LEASE_SECONDS", default=10.0)
if JITAD_LEASE_SECONDS < 3:
    refuse("JITAD_LEASE_SECONDS must be at least 3 (claims are renewed every third of it)")
JITAD_CLAIM_MAX_HOLD_SECONDS = env.float("JITAD_CLAIM_MAX_HOLD_SECONDS", default=900.0)
# Redundancy (docs/engine.md, "Nothing stops silently"). The scheduler lease: how long a dead
# scheduler's leadership lasts before another takes over. Every worker and scheduler reports a
# heartbeat every JITAD_HEARTBEAT_SECONDS, as JITAD_NODE_NAME (default: the host name; set it
# when one machine runs several schedulers); one silent for JITAD_PROCESS_SILENT_SECONDS is
# alerted as dead, and forgotten after JITAD_PROCESS_FORGET_HOURS.
JITAD_SCHEDULER_LEASE_SECONDS = env.float("JITAD_SCHEDULER_LEASE_SECONDS", default=6.0)
JITAD_NODE_NAME = env.str("JITAD_NODE_NAME", default="")
JITAD_HEARTBEAT_SECONDS = env.float("JITAD_HEARTBEAT_SECONDS", default=2.0)
JITAD_PROCESS_SILENT_SECONDS = env.float("JITAD_PROCESS_SILENT_SECONDS", default=15.0)
JITAD_PROCESS_FORGET_HOURS = env.float("JITAD_PROCESS_FORGET_HOURS", default=24.0)
# The watchdog runs every JITAD_WATCH_INTERVAL seconds in one live process (whichever holds
# its lease) and alerts, once per condition until it is resolved: grants past their end by
# more than JITAD_REVOCATION_SLA_SECONDS, no sweep for JITAD_SWEEP_STALE_SECONDS, dead
# processes, domain controllers that do not answer a probe within JITAD_DC_PROBE_TIMEOUT.
# An open condition is reminded every JITAD_ALERT_REMIND_MINUTES (0: never).
JITAD_WATCH_INTERVAL = env.float("JITAD_WATCH_INTERVAL", default=5.0)
JITAD_REVOCATION_SLA_SECONDS = env.float("JITAD_REVOCATION_SLA_SECONDS", default=30.0)
JITAD_SWEEP_STALE_SECONDS = env.float("JITAD_SWEEP_STALE_SECONDS", default=15.0)
JITAD_DC_PROBE_TIMEOUT = env.float("JITAD_DC_PROBE_TIMEOUT", default=5.0)
# The watchdog also asks the broker, within JITAD_BROKER_PROBE_TIMEOUT: one that does not answer
# is alerted, and meanwhile the watchdog's process revokes due grants and sends alerts itself.
JITAD_BROKER_PROBE_TIMEOUT = env.float("JITAD_BROKER_PROBE_TIMEOUT", default=3.0)
JITAD_ALERT_REMIND_MINUTES = env.float("JITAD_ALERT_REMIND_MINUTES", default=60.0)
# Transient failures: attempts before the grant is marked failed and alerted, and the
# exponential backoff (with full jitter) between them.
JITAD_RETRY_MAX_ATTEMPTS = env.int("JITAD_RETRY_MAX_ATTEMPTS", default=5)
JITAD_RETRY_BASE_SECONDS = env.float("JITAD_RETRY_BASE_SECONDS", default=1.0)
JITAD_RETRY_MAX_SECONDS = env.float("JITAD_RETRY_MAX_SECONDS", default=60.0)
# What the approval queue shows about a requester: their grants of the same target over
# JITAD_CONTEXT_HISTORY_DAYS, and an "always-on" flag when they held it on at least
# JITAD_ALWAYS_ON_MIN_DAYS distinct days of the last JITAD_ALWAYS_ON_WINDOW_DAYS.
JITAD_CONTEXT_HISTORY_DAYS = env.int("JITAD_CONTEXT_HISTORY_DAYS", default=30)
JITAD_ALWAYS_ON_WINDOW_DAYS = env.int("JITAD_ALWAYS_ON_WINDOW_DAYS", default=14)
JITAD_ALWAYS_ON_MIN_DAYS = env.int("JITAD_ALWAYS_ON_MIN_DAYS", default=8)
# How many due grants one sweep claims (the rest go in the next sweep).
JITAD_SWEEP_BATCH = env.int("JITAD_SWEEP_BATCH", default=2000)
JITAD_SWEEP_MAX_BATCHES = env.int("JITAD_SWEEP_MAX_BATCHES", default=20)
# A claim's lease also covers its message's wait behind the ones the same sweep sent before it
# (this many seconds per message ahead): in a mass expiry the last groups' messages wait for
# the first ones, and a claim lapsing before its message is read would be claimed and sent again.
JITAD_SWEEP_MESSAGE_SECONDS = env.float("JITAD_SWEEP_MESSAGE_SECONDS", default=0.5)
if JITAD_SWEEP_MESSAGE_SECONDS < 0:
    refuse("JITAD_SWEEP_MESSAGE_SECONDS must be 0 or more")

# --- Policy file (jitad_apply_policy) ---------------------------------------------------
# A larger file is refused before it is read (a policy file of a few thousand targets is ~1 MB).
JITAD_POLICY_MAX_BYTES = env.int("JITAD_POLICY_MAX_BYTES", default=5 * 1024 * 1024)
