"""A queue no live worker consumes is alerted (its work would wait for ever), and resolved when one does."""
from jitad.engine.models import Heartbeat
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for


def _open(queue: str) -> bool:
    from jitad.notifications.models import AlertCondition

    return AlertCondition.objects.filter(key=f"engine.queue_unserved:{queue}", resolved_at__isnull=True).exists()


def test_a_layout_that_leaves_a_queue_unconsumed_is_alerted(nodes, alert_sink):
    """GIVEN workers started as the docs once said, one with -Q celery only WHEN the watchdog
    runs THEN the 'notifications' and 'hosts' queues are each alerted once, and the alert about
    notifications reaches the security channel even though nobody reads that queue WHEN a
    worker for -Q notifications,hosts starts THEN both are resolved."""
    env = nodes.env()
    nodes.worker(env, beat=True, queues=("celery",))
    wait_for(lambda: _open("notifications") and _open("hosts"), timeout=60, message="both unserved queues alerted")
    assert not _open("celery")
    note = Notification.objects.get(event="engine.queue_unserved", subject__contains="'notifications'")
    assert "-Q celery" in note.body
    wait_for(lambda: any("consumes the 'notifications' queue" in m.get("title", "") for m in alert_sink.messages),
             timeout=30, message="the alert delivered although no worker reads the notifications queue")
    workers = Heartbeat.objects.filter(role=Heartbeat.Role.WORKER, stopped_at__isnull=True)
    assert {h.queues for h in workers} == {"celery"}

    nodes.worker(env, queues=("notifications,hosts",))
    wait_for(lambda: not _open("notifications") and not _open("hosts"), timeout=60, message="both resolved")
    assert Notification.objects.filter(event="engine.queue_unserved").count() == 2
    assert Notification.objects.filter(event="engine.queue_served").count() == 2
