"""The database flush after a transactional test, retried when PostgreSQL picks it as a deadlock's victim.

A worker process of the test session (its beat sweeps every 0.5 s) may hold a share lock on
one table while the flush's TRUNCATE of every table waits for it, and then ask for a table the
TRUNCATE already locked: PostgreSQL aborts one of the two, and when that is the flush, the
test "errors at teardown" and the next test starts on the previous one's rows. The worker's
transaction is short, so the flush is run again after a moment; any other error is raised.
"""
import time

from django.core.management.base import CommandError
from django.test import TransactionTestCase

ATTEMPTS = 5


def _is_deadlock(error: CommandError) -> bool:
    cause = error.__cause__
    return cause is not None and "deadlock detected" in str(cause)


def install() -> None:
    """Wrap TransactionTestCase's teardown flush with the retry (once per process)."""
    original = TransactionTestCase._fixture_teardown
    if getattr(original, "retries_deadlocks", False):
        return

    def _fixture_teardown(self):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return original(self)
            except CommandError as e:
                if attempt == ATTEMPTS or not _is_deadlock(e):
                    raise
                time.sleep(0.2 * attempt)

    _fixture_teardown.retries_deadlocks = True
    TransactionTestCase._fixture_teardown = _fixture_teardown
