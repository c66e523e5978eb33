"""Sending work by task name with the broker down: the caller never fails, and the claim goes back to the sweep."""
import socket
import uuid

import pytest
from celery import Celery
from django.db import transaction

from jitad.elevation.models import HeldRemoval
from jitad.engine import claims, queue


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_redis(monkeypatch):
    """The current Celery app, pointed at a Redis that is not there (a port nothing listens on).

    Celery prefers the ``CELERY_BROKER_URL`` environment variable to the app's own ``broker``
    (CI sets it to the real Redis), so it is cleared while the dead app is current."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    app = Celery("dead-broker", broker=url, set_as_current=False)
    assert app.conf.broker_url == url
    app.conf.broker_connection_timeout = 1
    app.conf.broker_connection_retry = False
    app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1}
    from celery import current_app
    previous = current_app._get_current_object()
    app.set_current()
    yield app
    previous.set_current()
    app.close()


@pytest.mark.django_db(transaction=True)
def test_enqueue_with_the_broker_down_returns_false_and_hands_the_claim_back(dead_redis):
    """GIVEN rows claimed for a message and a broker that refuses connections WHEN the message is enqueued on
    commit THEN the transaction commits, nothing raises, and ``on_failure`` hands the rows back to the sweep."""
    batch = uuid.uuid4()
    HeldRemoval.objects.create(group_dn="CN=g,OU=JIT,DC=x", member_dn="CN=m,DC=x", member_key="cn=m,dc=x",
                               batch=batch, state=HeldRemoval.State.CONFIRMED)
    outcome = []
    with transaction.atomic():
        token, rows = claims.claim(HeldRemoval.objects.filter(batch=batch), limit=1)
        pks = [r.pk for r in rows]
        queue.enqueue_on_commit("jitad.test.nothing", pks, str(token),
                                on_failure=lambda: outcome.append(claims.release(HeldRemoval, pks, token)))
        assert outcome == []  # not before the commit
    assert outcome == [1]
    assert HeldRemoval.objects.get(pk=pks[0]).claim_token is None
    assert queue.enqueue("jitad.test.nothing", 1) is False  # and directly, without a callback
