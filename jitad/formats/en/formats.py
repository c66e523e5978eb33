"""English formats: one timestamp shape everywhere, 2026-12-05 14:30 UTC (jitad.humantime.WHEN_FORMAT)."""
from jitad.humantime import WHEN_FORMAT

DATETIME_FORMAT = WHEN_FORMAT
SHORT_DATETIME_FORMAT = WHEN_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
