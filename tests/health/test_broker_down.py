"""A broker that stops: alerted through the security channel, and revocations go on without it.

The broker really is down: a Redis of the test's own, stopped (its port then refuses), and
the embedded broker's queue folder replaced by a file.
"""
from jitad.broker import probe
from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.notifications.models import Notification
from tests.conftest import ARTIFACTS
from tests.support.processes import RedisServer
from tests.support.waiting import wait_for

from ..elevation.helpers import ad_is_member, expire_now, wait_state

RAISED, RESOLVED = "engine.broker_unreachable", "engine.broker_unreachable.resolved"


def _count(event: str) -> int:
    return Notification.objects.filter(event=event).count()


def _at_webhook(alert_sink, words: str) -> list[dict]:
    return [m for m in alert_sink.messages if words in m.get("title", "")]


def test_redis_stops_the_outage_is_alerted_and_expired_grants_are_still_revoked(nodes, make_user, make_target,
                                                                                 ldap_admin, alert_sink, tmp_path):
    """GIVEN jitad (an engine worker with its scheduler) on a Redis of its own, and two active
    grants WHEN Redis stops and one grant expires THEN the outage is alerted once, and the
    alert reaches the security channel's webhook although no worker can be told to send it;
    the expired grant is revoked in AD while Redis is still down, the other is left alone, and
    the scheduler's log says it cannot send without a traceback per periodic task
    WHEN Redis is back THEN the condition is resolved once and the workers take over again:
    the second grant, expired then, is revoked as usual."""
    redis = RedisServer(tmp_path / "redis", ARTIFACTS / "engine" / "redis-down.log").start()
    nodes.started.append(redis)
    env = nodes.env(CELERY_BROKER_URL=redis.url)
    worker = nodes.worker(env, beat=True)
    target = make_target()
    first, second = (
        wait_state(services.request_create(requester=make_user("brk", groups=("admins",)), target=target,
                                           duration_minutes=30).grant.id, Grant.State.ACTIVE, timeout=90)
        for _ in range(2)
    )

    redis.stop()
    expire_now(first.id)
    wait_for(lambda: _count(RAISED), timeout=60, message="the broker outage alerted")
    wait_for(lambda: _at_webhook(alert_sink, "message broker does not answer"), timeout=60,
             message="the outage alert at the security channel's webhook")
    assert "does not answer" in Notification.objects.get(event=RAISED).body
    revoked = wait_state(first.id, Grant.State.REVOKED, timeout=60)
    assert revoked.membership_removed is True
    assert not ad_is_member(ldap_admin, target.group_dn, first.user_dn)
    assert ad_is_member(ldap_admin, target.group_dn, second.user_dn)
    assert Grant.objects.get(id=second.id).state == Grant.State.ACTIVE
    assert _count(RAISED) == 1  # one alert for the outage, however many watchdog runs saw it
    assert len(_at_webhook(alert_sink, "message broker does not answer")) == 1
    log = worker.log_tail(10**7)
    assert "revocation(s) done in this process" in log
    # The scheduler says once that it cannot send, instead of a traceback per periodic task and tick.
    assert "while the broker is unreachable" in log and "Message Error" not in log

    redis.start()
    wait_for(lambda: _count(RESOLVED), timeout=60, message="the outage resolved")
    expire_now(second.id)
    wait_state(second.id, Grant.State.REVOKED, timeout=60)
    assert not ad_is_member(ldap_admin, target.group_dn, second.user_dn)
    assert (_count(RAISED), _count(RESOLVED)) == (1, 1)


def test_the_probe_names_what_is_wrong_and_nothing_secret(settings, tmp_path):
    """The watchdog's probe: "" for a broker that takes messages; otherwise why, naming the
    Redis by host and port (never its password) or the embedded broker's folder."""
    redis = RedisServer(tmp_path / "redis", ARTIFACTS / "engine" / "redis-probe.log").start()
    try:
        settings.CELERY_BROKER_URL = redis.url
        assert probe(deadline=1) == ""
    finally:
        redis.kill()
    settings.CELERY_BROKER_URL = f"redis://:hunter2-secret@127.0.0.1:{redis.port}/0"
    why = probe(deadline=1)
    assert f"127.0.0.1:{redis.port} does not answer" in why and "hunter2" not in why

    folder = tmp_path / "queue"
    settings.CELERY_BROKER_URL = "jitadfs://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                                                "data_folder_out": str(folder)}
    folder.mkdir()
    assert probe(deadline=1) == ""
    assert list(folder.iterdir()) == []  # the probe leaves nothing a reader could take
    folder.rmdir()
    folder.write_text("not a folder")  # root ignores permissions: a file takes the folder's place
    assert "queue folder" in probe(deadline=1)
