"""Deliveries are the engine's claimed work: a message carries a claim, an attempt takes it, failures go through
the engine's "attempt failed" routine, and the periodic check picks up what a dead worker or broker left.

Messages are published to a recorder instead of the broker (``published``) and run in-process through the
task, as the worker would run them; the destinations are a webhook receiver of each test's own, and the worker
that dies mid-send is a real process killed with SIGKILL.
"""
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from jitad.notifications import tasks
from jitad.notifications.models import Delivery, Notification
from jitad.notifications.services import Outgoing, SECURITY, alert_raise, deliveries_resend, notifications_create
from tests.support.sweeper import database_url
from tests.support.waiting import wait_for
from tests.support.webhook import WebhookReceiver

DeliveryState = Delivery.State
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS = {"jitad.notifications.send": tasks.delivery_send, "jitad.notifications.send_batch": tasks.deliveries_send_batch}


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


class Published(list):
    """What would have been published to the broker, as (task name, args, options), in order."""

    def run_all(self, limit: int = 20) -> int:
        """Run every message (and the messages they publish) through its task in-process; returns how many."""
        ran = 0
        while self and ran < limit:
            name, args, _ = self.pop(0)
            TASKS[name](*args)
            ran += 1
        return ran


@pytest.fixture
def published(monkeypatch):
    from celery import current_app

    sent = Published()
    monkeypatch.setattr(current_app._get_current_object(), "send_task",
                        lambda name, args=None, kwargs=None, **options: sent.append((name, tuple(args), options)))
    return sent


def _row(d: Delivery) -> Delivery:
    return Delivery.objects.get(id=d.id)


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_message_loses_the_take_while_the_first_is_sending(settings, receiver, published):
    """GIVEN an alert whose message was delivered twice (a broker redelivery) WHEN the first copy is half-way
    through its send (the destination has not answered yet) and the second copy runs THEN the second finds
    the claim taken and sends nothing; the first finishes: one message at the destination, one attempt."""
    settings.JITAD_ALERT_URLS = [receiver.url]
    receiver.hold_paths.add("/alerts")
    d = alert_raise(event="test.claimed", subject="twice", body="b").deliveries.get()
    ((name, args, _),) = published
    assert name == "jitad.notifications.send" and args == (d.id, str(_row(d).claim_token))
    published.clear()

    def first_copy():
        try:
            tasks.delivery_send(*args)
        finally:
            connection.close()

    first = threading.Thread(target=first_copy)
    first.start()
    try:
        wait_for(lambda: receiver.hits == ["/alerts"], timeout=10, message="the first copy at the destination")
        sending = _row(d)
        assert sending.attempt_started_at is not None and sending.claim_token not in (None, d.claim_token)
        tasks.delivery_send(*args)  # the duplicate
        assert receiver.hits == ["/alerts"]
        assert _row(d).claim_token == sending.claim_token  # still the first copy's
    finally:
        receiver.release()
        first.join(timeout=20)
    d = _row(d)
    assert (d.state, d.attempts, d.claim_token, d.attempt_started_at) == (DeliveryState.SENT, 1, None, None)
    assert [m["title"] for m in receiver.messages] == ["twice"]
    assert published == []


CHILD = """
import sys
import django
django.setup()
from jitad.notifications.services import delivery_send
delivery_send(delivery_id=int(sys.argv[1]), token=sys.argv[2])
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempts_before", [0, 2])
def test_a_send_whose_worker_died_is_picked_up_by_the_resend_sweep(settings, receiver, published, tmp_path,
                                                                    attempts_before):
    """GIVEN a delivery whose message a worker process took, half-way through sending (the destination holds
    the request) WHEN that process is killed (SIGKILL: no "failed" is ever recorded) and its lease lapses THEN
    the periodic check counts the attempt as never finished: with attempts left it is retried after the
    backoff, by a message carrying a new claim, and sent; when that was the last attempt it is failed,
    keeping the error before it."""
    settings.JITAD_DELIVERY_MAX_ATTEMPTS = 3
    settings.JITAD_ALERT_URLS = [receiver.url_for("/dies")]
    receiver.hang_paths.add("/dies")
    d = alert_raise(event="test.claimed", subject="dies", body="b").deliveries.get()
    Delivery.objects.filter(id=d.id).update(attempts=attempts_before, last_error="attempt 2: refused" if attempts_before else "")
    ((_, args, _),) = published
    published.clear()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", JITAD_DATABASE_URL=database_url(),
               JITAD_VAR_DIR=str(tmp_path), JITAD_ALERT_URLS=receiver.url_for("/dies"), PYTHONPATH=REPO)
    env.pop("CELERY_BROKER_URL", None)
    worker = subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: receiver.hits == ["/dies"], timeout=30, message="the worker's send at the destination")
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=10)
    dead = _row(d)
    assert dead.attempt_started_at is not None and dead.attempts == attempts_before  # nobody recorded anything

    assert deliveries_resend() == 0  # the lease has not lapsed yet: the attempt may still be running
    assert _row(d).claim_token == dead.claim_token
    lapsed = dead.lease_until + timedelta(seconds=1)
    retried = deliveries_resend(now=lapsed)
    d = _row(d)
    assert d.attempts == attempts_before + 1 and d.attempt_started_at is None
    if attempts_before + 1 >= settings.JITAD_DELIVERY_MAX_ATTEMPTS:
        assert (retried, d.state, d.next_attempt_at, d.claim_token) == (0, DeliveryState.FAILED, None, None)
        assert d.last_error == "attempt 2: refused\nattempt 3 never finished (worker stopped?); giving up"
        assert published == []
        return
    assert (retried, d.state) == (1, DeliveryState.PENDING)
    assert d.last_error == "attempt 1 never finished (worker stopped?)"
    assert d.next_attempt_at > timezone.now()  # after the backoff
    ((name, args, options),) = published
    assert args == (d.id, str(d.claim_token)) and dead.claim_token != d.claim_token and options["countdown"] > 0
    receiver.hang_paths.clear()
    published.run_all()
    d = _row(d)
    assert (d.state, d.attempts, d.last_error) == (DeliveryState.SENT, 2, "")
    assert [m["title"] for m in receiver.messages] == ["dies"]


@pytest.mark.django_db(transaction=True)
def test_failures_past_the_limit_leave_the_delivery_failed(settings, receiver, published):
    """GIVEN a destination that refuses every request and 2 attempts allowed WHEN the alert's messages run,
    each failure scheduling the next through the engine THEN the retry waits the delivery's backoff (half
    to all of JITAD_DELIVERY_RETRY_BASE_SECONDS), there are exactly 2 attempts, and the delivery ends failed with the last error and no claim; nothing
    is queued after that."""
    settings.JITAD_DELIVERY_MAX_ATTEMPTS = 2
    settings.JITAD_DELIVERY_RETRY_BASE_SECONDS = 60  # the delivery's own backoff, not the engine's default
    settings.JITAD_DELIVERY_RETRY_MAX_SECONDS = 600
    settings.JITAD_ALERT_URLS = [receiver.url]
    receiver.refuse_paths.add("/alerts")
    d = alert_raise(event="test.claimed", subject="refused", body="b").deliveries.get()

    assert published.run_all(limit=1) == 1
    d = _row(d)
    assert (d.state, d.attempts) == (DeliveryState.PENDING, 1)
    assert d.last_error.startswith("attempt 1: ") and "error=500" in d.last_error
    ((_, args, options),) = published  # the retry, claimed for its message
    assert args == (d.id, str(d.claim_token)) and 30 <= options["countdown"] <= 60
    assert d.lease_until > d.next_attempt_at

    assert published.run_all() == 1
    d = _row(d)
    assert (d.state, d.attempts, d.next_attempt_at) == (DeliveryState.FAILED, 2, None)
    assert (d.claim_token, d.lease_until, d.attempt_started_at) == (None, None, None)
    assert d.last_error.startswith("attempt 2: ") and "error=500" in d.last_error
    assert receiver.hits == ["/alerts", "/alerts"] and published == []
    assert deliveries_resend(now=timezone.now() + timedelta(hours=1)) == 0  # failed stays failed


@pytest.mark.django_db(transaction=True)
def test_a_broker_down_at_enqueue_leaves_the_deliveries_to_the_sweep(settings, receiver, dead_redis, monkeypatch):
    """GIVEN a broker that refuses connections WHEN an alert and a batch of notifications commit THEN nothing
    raises, and every claim their messages carried is handed back WHEN the broker answers again and the
    periodic check runs THEN it claims them, queues their messages, and they are delivered."""
    settings.JITAD_ALERT_URLS = [receiver.url]
    with transaction.atomic():
        alert = alert_raise(event="test.claimed", subject="alone", body="b")
    with transaction.atomic():
        batch = notifications_create(items=[Outgoing(event="test.claimed", subject=f"batch {i}", body="b",
                                                     destinations=[SECURITY]) for i in range(3)])
    rows = Delivery.objects.filter(notification__in=[alert, *batch])
    assert rows.count() == 4
    assert set(rows.values_list("state", "claim_token", "lease_until")) == {(DeliveryState.PENDING, None, None)}

    published = Published()
    monkeypatch.setattr(dead_redis, "send_task",
                        lambda name, args=None, kwargs=None, **options: published.append((name, tuple(args), options)))
    later = timezone.now() + timedelta(seconds=settings.JITAD_DELIVERY_CHECK_INTERVAL + 1)
    assert deliveries_resend(now=later) == 4
    tokens = set(rows.values_list("claim_token", flat=True))
    assert len(tokens) == 1 and None not in tokens
    # One batch message for the lot (its task gives each apprise delivery a message of its own).
    ((name, (ids, token), _),) = published
    assert name == "jitad.notifications.send_batch" and token == str(*tokens)
    assert sorted(ids) == sorted(rows.values_list("id", flat=True))
    assert deliveries_resend(now=later) == 0  # claimed: the next check leaves them to their messages
    published.run_all()
    assert set(rows.values_list("state", flat=True)) == {DeliveryState.SENT}
    assert sorted(m["title"] for m in receiver.messages) == ["alone", "batch 0", "batch 1", "batch 2"]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_delivery_and_a_pending_one_is_still_sent(settings, receiver, published,
                                                                            no_background_worker):
    """GIVEN deliveries recorded before they were claimed work (sent, failed, and pending mid-way through its
    attempts) WHEN migrated forward THEN each keeps its state, attempts, next attempt and last error, unclaimed
    WHEN the periodic check runs THEN the pending one is claimed, queued and sent, keeping its count.
    (No worker of the session runs meanwhile: its own periodic check would claim the pending one first; seen
    in the parallel run.)"""
    from django.db.migrations.executor import MigrationExecutor

    # A delivery recorded after the last test's clean-up and before the fixture stopped the session's worker
    # is not this test's (the parallel run once found a second pending one here): it starts from none at all.
    Notification.objects.all().delete()
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("notifications")
    before = [("notifications", "0004_digest_entries")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    note = old.get_model("notifications", "Notification").objects.create(event="test.old", subject="old", body="b")
    due = timezone.now() - timedelta(hours=1)
    rows = {
        "sent": dict(state="sent", attempts=1, sent_at=due),
        "failed": dict(state="failed", attempts=3, last_error="attempt 3: refused"),
        "pending": dict(state="pending", attempts=1, next_attempt_at=due, last_error="attempt 1: refused"),
    }
    OldDelivery = old.get_model("notifications", "Delivery")
    ids = {name: OldDelivery.objects.create(notification_id=note.pk, channel="apprise", destination=SECURITY,
                                            address=f"json://127.0.0.1:{receiver.port}/a...s", **fields).pk
           for name, fields in rows.items()}

    MigrationExecutor(connection).migrate(latest)

    for name, fields in rows.items():
        d = Delivery.objects.get(id=ids[name])
        assert {k: getattr(d, k) for k in fields} == fields, name
        assert (d.claim_token, d.lease_until, d.attempt_started_at) == (None, None, None)
    settings.JITAD_ALERT_URLS = [receiver.url]
    assert deliveries_resend() == 1
    published.run_all()
    d = Delivery.objects.get(id=ids["pending"])
    assert (d.state, d.attempts, d.last_error) == (DeliveryState.SENT, 2, "")
    assert [m["title"] for m in receiver.messages] == ["old"]
