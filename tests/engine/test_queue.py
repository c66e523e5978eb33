"""Sending work by task name with the broker down: the caller never fails, and the claim goes back to the sweep.

``dead_redis`` (tests/conftest.py) makes the current Celery app one whose Redis is not there.
"""
import uuid

import pytest
from django.db import transaction

from jitad.elevation.models import HeldRemoval
from jitad.engine import claims, queue


@pytest.mark.django_db(transaction=True)
def test_enqueue_with_the_broker_down_returns_false_and_hands_the_claim_back(dead_redis, no_background_worker):
    """GIVEN rows claimed for a message and a broker that refuses connections WHEN the message is enqueued on
    commit THEN the transaction commits, nothing raises, and ``on_failure`` hands the rows back to the sweep.
    (No worker of the session runs meanwhile: its sweep would take the confirmed removal itself.)"""
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
