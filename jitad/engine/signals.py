"""What the engine tells the layers above it (they connect receivers in their AppConfig.ready)."""
from django.dispatch import Signal

# Every JITAD_WATCH_INTERVAL, in exactly one live jitad process (the holder of the "watch"
# lease): check what must never fail silently and alert on it.
watch = Signal()
# Sent right after ``watch`` in the same run, once every check has run: for what must come after
# them all (sending, from this process, the alerts the checks raised while no worker can).
watch_finished = Signal()

# A domain controller answers again after none did: retry what waited for it now.
directory_recovered = Signal()

# The broker does not answer (sent by the watchdog, in the process that runs it): nothing the
# scheduler sends reaches a worker, so do the most urgent work here until ``until`` (a
# time.monotonic() deadline), e.g. due revocations. The watchdog sends its alerts after.
broker_unreachable = Signal()

# The elected scheduler asks when timed work next falls due (every JITAD_WAKE_REFRESH_SECONDS,
# and again right after each wake-up). A receiver takes ``after`` (an aware datetime) and
# returns (task name, instant) for its earliest work due strictly after ``after``, or None;
# the scheduler sends that task at that instant, with the keyword ``due`` (the instant, as
# time.time()), instead of waiting for the task's next periodic run. Answers are hints: the
# periodic run stays the safety net.
next_due = Signal()
