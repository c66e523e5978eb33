"""What the engine tells the layers above it (they connect receivers in their AppConfig.ready)."""
from django.dispatch import Signal

# Every JITAD_WATCH_INTERVAL, in exactly one live jitad process (the holder of the "watch"
# lease): check what must never fail silently and alert on it.
watch = Signal()

# A domain controller answers again after none did: retry what waited for it now.
directory_recovered = Signal()
