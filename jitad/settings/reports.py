"""Reports: the KPI period, the revocation SLA, working hours, and the risk-signal thresholds (docs/reports.md)."""
from .env import env, refuse

# --- Reports (jitad/reports/, docs/reports.md) -----------------------------------------
# The period a report covers when none is chosen, in days ending now.
JITAD_REPORT_PERIOD_DAYS = env.int("JITAD_REPORT_PERIOD_DAYS", default=30)
# A grant is removed "on time" when its membership is gone within this many seconds of its end
# (expiry, or the moment an early release / admin revoke was asked for).
JITAD_REPORT_REVOKE_SLA_SECONDS = env.int("JITAD_REPORT_REVOKE_SLA_SECONDS", default=60)
# Working hours, for "activations outside working hours" and the "always on" share: the local time
# zone, the hours [start, end) and the ISO weekdays (1 = Monday ... 7 = Sunday) that count as work.
JITAD_REPORT_TIME_ZONE = env.str("JITAD_REPORT_TIME_ZONE", default="UTC")
JITAD_REPORT_WORK_START_HOUR = env.int("JITAD_REPORT_WORK_START_HOUR", default=8)
JITAD_REPORT_WORK_END_HOUR = env.int("JITAD_REPORT_WORK_END_HOUR", default=18)
JITAD_REPORT_WORK_DAYS = env.list("JITAD_REPORT_WORK_DAYS", cast=int, default=[1, 2, 3, 4, 5])
# "Always on": a person elevated for at least this share (percent) of the period's working hours,
# or elevated on at least JITAD_REPORT_ALWAYS_ON_DAYS consecutive days.
JITAD_REPORT_ALWAYS_ON_SHARE_PCT = env.float("JITAD_REPORT_ALWAYS_ON_SHARE_PCT", default=50.0)
JITAD_REPORT_ALWAYS_ON_DAYS = env.int("JITAD_REPORT_ALWAYS_ON_DAYS", default=10)
# A burst: at least this many denied or failed requests by one person within this many minutes.
JITAD_REPORT_BURST_WINDOW_MINUTES = env.int("JITAD_REPORT_BURST_WINDOW_MINUTES", default=60)
JITAD_REPORT_BURST_THRESHOLD = env.int("JITAD_REPORT_BURST_THRESHOLD", default=3)
# Eligible people who have not requested a right for this many days are candidates to remove.
JITAD_REPORT_UNUSED_DAYS = env.int("JITAD_REPORT_UNUSED_DAYS", default=90)
# Beat records the daily snapshot this often (seconds); a run is idempotent per day.
JITAD_REPORT_SNAPSHOT_INTERVAL = env.float("JITAD_REPORT_SNAPSHOT_INTERVAL", default=3600.0)


def _check() -> None:
    """Refuse at start-up what would make every working-hours figure silently wrong (every problem, env.refuse)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(JITAD_REPORT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        refuse(f"JITAD_REPORT_TIME_ZONE={JITAD_REPORT_TIME_ZONE!r} is not a time zone (e.g. Europe/Paris, UTC)")
    if not 0 <= JITAD_REPORT_WORK_START_HOUR < JITAD_REPORT_WORK_END_HOUR <= 24:
        refuse("JITAD_REPORT_WORK_START_HOUR and _END_HOUR must satisfy 0 <= start < end <= 24")
    if not JITAD_REPORT_WORK_DAYS or any(d not in range(1, 8) for d in JITAD_REPORT_WORK_DAYS):
        refuse("JITAD_REPORT_WORK_DAYS lists ISO weekdays, 1 (Monday) to 7 (Sunday)")
    if JITAD_REPORT_PERIOD_DAYS < 1 or JITAD_REPORT_REVOKE_SLA_SECONDS < 0 or JITAD_REPORT_BURST_THRESHOLD < 1:
        refuse("JITAD_REPORT_PERIOD_DAYS and JITAD_REPORT_BURST_THRESHOLD must be at least 1, "
               "JITAD_REPORT_REVOKE_SLA_SECONDS at least 0")


_check()
