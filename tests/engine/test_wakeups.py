"""The elected scheduler's wake-ups: it sends a task at the instant its work falls due.

The decisions are tested on the scheduler itself, with a receiver of the engine's
``next_due`` signal standing for a layer above and the sends recorded; the end-to-end
proof (a real worker and scheduler, a grant's end on the Samba DC) is in
tests/elevation/test_wakeups.py.
"""
import time
from datetime import UTC, datetime

import pytest

from jitad.engine.scheduler import ElectedScheduler
from jitad.engine.signals import next_due

pytestmark = pytest.mark.django_db


class Layer:
    """A receiver: its work falls due at ``due`` (time.time()); it records what it was asked."""

    def __init__(self, task="layer.sweep"):
        self.task, self.due, self.asked = task, None, []

    def __call__(self, *, after, **kwargs):
        self.asked.append(after.timestamp())
        due = [t for t in self.due if t > after.timestamp()] if self.due else []
        return (self.task, datetime.fromtimestamp(min(due), UTC)) if due else None


@pytest.fixture
def scheduler(settings):
    settings.JITAD_WAKE_REFRESH_SECONDS = 1.0
    s = ElectedScheduler.__new__(ElectedScheduler)  # its wake-up part only: no beat, no lease, no heartbeat
    s._name, s._wake_ask_at, s._wake_due, s._wake_mark = "test-scheduler", 0.0, {}, 0.0
    s.sent = []
    s._send = lambda task: s.sent.append((task, time.time())) or True
    return s


@pytest.fixture
def layer():
    receiver = Layer()
    next_due.connect(receiver, weak=False, dispatch_uid="test-layer")
    yield receiver
    next_due.disconnect(dispatch_uid="test-layer")


def test_it_sleeps_until_the_work_is_due_then_sends_once(scheduler, layer):
    now = time.time()
    layer.due = [now + 0.3, now + 0.3, now + 5]
    wait = scheduler._wake()
    assert scheduler.sent == []
    assert 0.2 < wait <= 0.3  # until the work is due, not a poll interval
    time.sleep(wait)
    while not scheduler.sent:  # the clock may land a hair early
        time.sleep(scheduler._wake())
    assert [t for t, _ in scheduler.sent] == ["layer.sweep"]
    assert scheduler.sent[0][1] >= now + 0.3
    # It asks again at once, for work after the wake-up it sent: the two rows due together cost
    # one message, and the next one is 5 s away (capped by the refresh).
    wait = scheduler._wake()
    assert len(scheduler.sent) == 1
    assert layer.asked[-1] >= now + 0.3
    assert 0.5 < wait <= 1.0


def test_work_recorded_due_in_the_past_since_the_last_look_is_sent_at_once(scheduler, layer):
    """A retry due 300 ms after a failure, recorded after the scheduler last asked, is found at
    the next look (asked from the last wake-up, not from now) and sent at once."""
    scheduler._wake()
    start = time.time()
    scheduler._wake_mark = start - 10  # the last wake-up, 10 s ago
    layer.due = [start - 2]  # due 2 s ago, recorded since the last question
    scheduler._wake_ask_at = 0.0  # the refresh comes
    assert scheduler._wake() == 0.0
    assert [t for t, _ in scheduler.sent] == ["layer.sweep"]
    assert scheduler._wake_mark >= start


def test_a_failing_receiver_is_logged_and_the_others_still_answer(scheduler, layer, caplog):
    def broken(**kwargs):
        raise RuntimeError("database away")

    next_due.connect(broken, weak=False, dispatch_uid="test-broken")
    try:
        layer.due = [time.time() - 1]
        scheduler._wake_mark = time.time() - 5
        scheduler._wake()
    finally:
        next_due.disconnect(dispatch_uid="test-broken")
    assert [t for t, _ in scheduler.sent] == ["layer.sweep"]
    assert "could not say when its work is due" in caplog.text
