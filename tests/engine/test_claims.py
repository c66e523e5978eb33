"""The engine's claimed-work verbs, once for every kind of work: claim, take, release (real database)."""
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from jitad.elevation.models import HeldRemoval
from jitad.engine import claims


def _rows(n: int) -> list[int]:
    batch = uuid.uuid4()
    rows = [HeldRemoval(group_dn="CN=g,OU=JIT,DC=x", member_dn=f"CN=m{i},DC=x", member_key=f"cn=m{i},dc=x",
                        batch=batch, state=HeldRemoval.State.CONFIRMED) for i in range(n)]
    HeldRemoval.objects.bulk_create(rows)
    return list(HeldRemoval.objects.filter(batch=batch).order_by("id").values_list("id", flat=True))


def _due():
    now = timezone.now()
    return HeldRemoval.objects.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).order_by("id")


@pytest.mark.django_db
def test_a_claim_marks_free_rows_and_skips_held_ones_until_their_lease_lapses():
    ids = _rows(5)
    token, rows = claims.claim(_due(), limit=3, attempts=7)
    assert [r.pk for r in rows] == ids[:3]
    assert set(HeldRemoval.objects.filter(claim_token=token).values_list("id", flat=True)) == set(ids[:3])
    assert set(HeldRemoval.objects.filter(claim_token=token).values_list("attempts", flat=True)) == {7}
    again, rest = claims.claim(_due(), limit=10)
    assert [r.pk for r in rest] == ids[3:]  # the held ones are not claimed twice
    HeldRemoval.objects.filter(claim_token=token).update(lease_until=timezone.now() - timedelta(seconds=1))  # died
    _, lapsed = claims.claim(_due(), limit=10)
    assert [r.pk for r in lapsed] == ids[:3]


@pytest.mark.django_db
def test_take_gives_a_message_its_rows_once():
    """GIVEN rows claimed for a message WHEN the message is delivered twice THEN the first execution takes them
    and the second gets nothing; WHEN a sweep claimed them again after the lease lapsed THEN the old message
    gets nothing either; a queryset narrows what may be taken."""
    ids = _rows(3)
    token, _ = claims.claim(_due(), limit=10)
    mine, rows = claims.take(HeldRemoval, ids, token)
    assert sorted(r.pk for r in rows) == ids and all(r.claim_token == mine for r in rows)
    assert claims.take(HeldRemoval, ids, token)[1] == []  # the duplicate

    HeldRemoval.objects.filter(pk__in=ids).update(lease_until=timezone.now() - timedelta(seconds=1))
    newer, _ = claims.claim(_due(), limit=10)
    assert claims.take(HeldRemoval, ids, mine)[1] == []  # an execution whose claim lapsed and was re-claimed
    HeldRemoval.objects.filter(pk=ids[0]).update(state=HeldRemoval.State.DONE)
    _, confirmed = claims.take(HeldRemoval.objects.filter(state=HeldRemoval.State.CONFIRMED), ids, newer)
    assert sorted(r.pk for r in confirmed) == ids[1:]


@pytest.mark.django_db
def test_release_hands_rows_back_at_once_and_only_to_the_holder():
    ids = _rows(2)
    token, _ = claims.claim(_due(), limit=10)
    assert claims.release(HeldRemoval, ids, uuid.uuid4()) == 0  # not the holder
    assert claims.release(HeldRemoval, ids, token) == 2
    assert not HeldRemoval.objects.filter(pk__in=ids, claim_token__isnull=False).exists()
    assert [r.pk for r in claims.claim(_due(), limit=10)[1]] == ids  # claimable at once


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_share_a_row():
    """GIVEN 60 free rows WHEN six threads (each its own database connection) claim batches of 4 at the same moment,
    over and over THEN every row is claimed exactly once."""
    ids = set(_rows(60))
    barrier = threading.Barrier(6)
    got: list[list[int]] = []
    lock = threading.Lock()

    def contend():
        try:
            barrier.wait()
            while True:
                _, rows = claims.claim(_due().filter(claim_token__isnull=True), limit=4)
                if not rows:
                    return
                with lock:
                    got.append([r.pk for r in rows])
        finally:
            connection.close()

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [pk for batch in got for pk in batch]
    assert sorted(claimed) == sorted(ids) and len(claimed) == len(set(claimed))
