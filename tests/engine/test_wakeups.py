"""The elected scheduler's wake-ups: it sends a task at the instant its work falls due.

The decisions are tested on the scheduler itself with its clock given (no sleeping, no
timing), a receiver of the engine's ``next_due`` signal standing for a layer above and the
sends recorded; the end-to-end proof (a real worker and scheduler, grant ends on the Samba
DC) is in tests/elevation/test_wakeups.py.
"""
from datetime import UTC, datetime

import pytest

from jitad.engine.scheduler import ElectedScheduler
from jitad.engine.signals import next_due

pytestmark = pytest.mark.django_db
T = 1_900_000_000.0  # the scheduler's clock in these tests (time.time())


class Layer:
    """A receiver: its work falls due at the instants in ``due``; it records what it was asked."""

    def __init__(self, task="layer.sweep"):
        self.task, self.due, self.asked = task, [], []

    def __call__(self, *, after, **kwargs):
        self.asked.append(after.timestamp())
        later = [t for t in self.due if t > after.timestamp()]
        return (self.task, datetime.fromtimestamp(min(later), UTC)) if later else None


@pytest.fixture
def scheduler(settings):
    settings.JITAD_WAKE_REFRESH_SECONDS = 1.0
    s = ElectedScheduler.__new__(ElectedScheduler)  # its wake-up part only: no beat, no lease, no heartbeat
    s._name, s._wake_ask_at, s._wake_due, s._wake_mark = "test-scheduler", 0.0, {}, 0.0
    s.sent = []
    s._send = lambda task, due: s.sent.append((task, due)) or True
    return s


@pytest.fixture
def layer():
    receiver = Layer()
    next_due.connect(receiver, weak=False, dispatch_uid="test-layer")
    yield receiver
    next_due.disconnect(dispatch_uid="test-layer")


def test_it_sleeps_until_the_work_is_due_then_sends_once(scheduler, layer):
    layer.due = [T + 0.3, T + 0.3, T + 5]
    assert scheduler._wake(T) == pytest.approx(0.3)  # until the work is due, not a poll interval
    assert scheduler.sent == []
    assert scheduler._wake(T + 0.29) == pytest.approx(0.01)
    assert scheduler.sent == []
    assert scheduler._wake(T + 0.3) == 0.0
    assert scheduler.sent == [("layer.sweep", T + 0.3)]  # the instant it was woken for goes with it
    # It asks again at once, for work after the wake-up it sent: the two rows due together cost
    # one message, and the next is 5 s away, so it looks again after the refresh (1 s).
    assert scheduler._wake(T + 0.31) == pytest.approx(1.0)
    assert layer.asked[-1] == pytest.approx(T + 0.3)
    assert scheduler.sent == [("layer.sweep", T + 0.3)]
    for now in (T + 1.31, T + 2.31, T + 3.31, T + 4.31):
        scheduler._wake(now)
    assert scheduler._wake(T + 5) == 0.0
    assert scheduler.sent[-1] == ("layer.sweep", T + 5)
    assert len(scheduler.sent) == 2


def test_work_recorded_due_in_the_past_since_the_last_look_is_sent_at_once(scheduler, layer):
    """A retry due 300 ms after a failure, recorded after the scheduler last asked, is found at
    the next look (asked from the last wake-up, not from now) and sent at once."""
    scheduler._wake(T)
    scheduler._wake_mark = T - 10  # the last wake-up, 10 s ago
    layer.due = [T - 2]  # due 2 s ago, recorded since the last question
    assert scheduler._wake(T + 1) == 0.0
    assert scheduler.sent == [("layer.sweep", T - 2)]
    assert scheduler._wake_mark == T + 1


def test_a_clock_set_back_does_not_stop_the_wake_ups(scheduler, layer):
    layer.due = [T + 100]
    scheduler._wake(T + 50)  # the clock was 50 s ahead; then NTP sets it back
    scheduler._wake_mark = T + 50
    layer.due = [T + 3]
    scheduler._wake(T)
    assert layer.asked[-1] <= T  # asked afresh at once, from no later than now
    assert scheduler._wake(T + 3) == 0.0
    assert scheduler.sent == [("layer.sweep", T + 3)]


def test_a_failing_receiver_is_logged_and_the_others_still_answer(scheduler, layer, caplog):
    def broken(**kwargs):
        raise RuntimeError("database away")

    next_due.connect(broken, weak=False, dispatch_uid="test-broken")
    try:
        layer.due = [T - 1]
        scheduler._wake_mark = T - 5
        scheduler._wake(T)
    finally:
        next_due.disconnect(dispatch_uid="test-broken")
    assert scheduler.sent == [("layer.sweep", T - 1)]
    assert "could not say when its work is due" in caplog.text


def test_an_unexpected_error_never_ends_beats_loop(scheduler, layer, caplog):
    def explode(task, due):
        raise ValueError("a bug in sending")

    scheduler._send = explode
    layer.due = [T - 1]
    scheduler._wake_mark = T - 5
    assert scheduler._wake(T) == 1.0  # it looks again after the refresh
    assert "looking for due work failed" in caplog.text
