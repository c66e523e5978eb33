"""When claimed work that failed is tried again: one backoff rule for every kind of work."""
import random

from django.conf import settings


def backoff_seconds(attempts: int, *, failed: bool = False, base: float | None = None, cap: float | None = None) -> float:
    """Seconds to wait before attempt ``attempts + 1``: exponential, with jitter.

    The step is ``base * 2 ** (attempts - 1)`` (``base`` for the first attempt), at most
    ``cap``; ``failed`` (the work gave up and waits for a person or a recovery) takes the
    cap itself. The wait is half the step fixed and half random: uniform between
    ``step / 2`` and ``step``, so workers that failed together do not all come back
    together, and never zero while ``base`` is above zero. ``base`` and ``cap`` default
    to JITAD_RETRY_BASE_SECONDS and JITAD_RETRY_MAX_SECONDS.
    """
    base = settings.JITAD_RETRY_BASE_SECONDS if base is None else base
    cap = settings.JITAD_RETRY_MAX_SECONDS if cap is None else cap
    step = cap if failed else min(cap, base * 2 ** max(0, attempts - 1))
    return step / 2 + random.uniform(0, step / 2)
