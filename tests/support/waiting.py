"""Polling for asynchronous outcomes (never sleeps a fixed time and hopes)."""
import time


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = ""):
    """Call ``predicate`` until it returns something truthy; fail with ``message`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate} (last value: {last!r})")
