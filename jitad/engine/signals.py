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
