"""Deliveries run on a queue of their own, so a destination that hangs never delays the grant engine.

The session's worker (tests/support/worker.py) runs as production should: one process
for the engine's queue ("celery", with beat) and one for the notifications queue.
"""
import uuid

from django.db import transaction

from jitad.celery import app
from jitad.elevation import services as elevation
from jitad.elevation.models import Grant
from jitad.notifications.models import Delivery
from jitad.notifications.services import named_destination, notification_create
from tests.elevation.helpers import expire_now, wait_state
from tests.support.waiting import wait_for


def _queue(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_notification_tasks_have_a_queue_of_their_own_and_a_plain_worker_consumes_both():
    """GIVEN jitad's Celery settings THEN every notification task goes to "notifications",
    server checks to "hosts", the engine's tasks to the default queue, and all queues are
    declared, so a worker started without -Q consumes them all and nothing is left unsent."""
    app.loader.import_default_modules()  # every app's tasks, as a worker loads them
    ours = {name for name in app.tasks if name.startswith("jitad.notifications.")}
    assert ours >= {"jitad.notifications.send", "jitad.notifications.send_batch", "jitad.notifications.resend"}
    assert {_queue(name) for name in ours} == {"notifications"}
    for name in ("jitad.elevation.grant_apply", "jitad.elevation.grants_revoke", "jitad.elevation.sweep",
                 "jitad.elevation.group_watch", "jitad.elevation.warn_expiring", "jitad.accounts.refresh_from_directory"):
        assert _queue(name) == "celery", name
    # Server checks after revocation and standing-admin scans wait on WinRM: a queue of their own.
    for name in ("jitad.elevation.grants_check_revoked", "jitad.elevation.hosts_scan", "jitad.elevation.host_scan"):
        assert _queue(name) == "hosts", name
    assert set(app.amqp.queues) == {"celery", "notifications", "hosts"}
    assert app.conf.task_default_queue == "celery"


def test_a_hung_destination_does_not_delay_revocations(live, alert_sink, make_user, make_target):
    """GIVEN an active grant and a dozen messages queued to a destination that never
    answers (each attempt holds a worker process for the delivery time limit) WHEN the
    grant expires while those deliveries hang THEN it is revoked promptly: the engine's
    queue is not stuck behind them."""
    target = make_target()
    holder = make_user("hung", groups=["admins"])
    req = elevation.request_create(requester=holder, target=target, duration_minutes=30)
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)

    tag = uuid.uuid4().hex[:8]
    with transaction.atomic():
        notes = [notification_create(event="test.hang", subject=f"hang {tag} {i}", body="b",
                                     destinations=[named_destination("slow")]) for i in range(12)]
    hung = Delivery.objects.filter(notification__in=notes)
    try:
        # The hanging destination holds the delivery processes now.
        wait_for(lambda: alert_sink.hits.count("/slow") >= 2, timeout=30, message="deliveries hanging at /slow")
        expire_now(grant.id)
        wait_state(grant.id, Grant.State.REVOKED, timeout=10)
        assert hung.filter(state=Delivery.State.PENDING).count() >= 8  # the deliveries were still hanging
    finally:
        hung.update(state=Delivery.State.FAILED, next_attempt_at=None)  # queued messages find nothing to do
