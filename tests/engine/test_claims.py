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
def test_a_message_takes_its_share_of_a_batch_claim():
    """GIVEN one claim covering a batch that goes out in several messages, its token carried as text WHEN one
    message takes its share THEN it gets those rows only, the others keep the batch's claim, and a row of
    its share claimed again meanwhile stays with its new holder."""
    ids = _rows(6)
    token, _ = claims.claim(_due(), limit=10)
    other = uuid.uuid4()
    HeldRemoval.objects.filter(pk=ids[2]).update(claim_token=other)
    mine, rows = claims.take(HeldRemoval, ids[:3], str(token))
    assert sorted(r.pk for r in rows) == ids[:2] and all(r.claim_token == mine for r in rows)
    assert set(HeldRemoval.objects.filter(claim_token=token).values_list("id", flat=True)) == set(ids[3:])
    assert HeldRemoval.objects.get(pk=ids[2]).claim_token == other


@pytest.mark.django_db
def test_a_claim_can_set_its_lease_in_its_one_update():
    """GIVEN work whose message waits behind others WHEN it is claimed with the lease's end THEN one UPDATE
    writes the claim and that lease (a second UPDATE of the rows in the same transaction rewrote every index
    again and re-checked their foreign keys)."""
    from django.test.utils import CaptureQueriesContext

    ids = _rows(4)
    later = timezone.now() + timedelta(minutes=5)
    with CaptureQueriesContext(connection) as q:
        token, rows = claims.claim(_due(), limit=10, until=later)
    assert [x["sql"].upper().startswith("UPDATE") for x in q.captured_queries].count(True) == 1
    assert sorted(r.pk for r in rows) == ids
    assert set(HeldRemoval.objects.filter(claim_token=token).values_list("lease_until", flat=True)) == {later}


@pytest.mark.django_db
def test_a_claim_each_gives_every_value_a_token_of_its_own_in_one_update():
    """GIVEN rows of three groups WHEN they are claimed a token per group THEN one UPDATE writes every row's
    claim and changes, each group's rows carry their group's token and no other, and the rows come back as
    they were before the claim."""
    from django.test.utils import CaptureQueriesContext

    by_group = {}
    for j in range(3):
        batch = uuid.uuid4()
        HeldRemoval.objects.bulk_create([HeldRemoval(group_dn=f"CN=g{j},OU=JIT,DC=x", member_dn=f"CN=m{i},DC=x",
                                                     member_key=f"cn=m{i},dc=x", batch=batch, attempts=1)
                                         for i in range(4)])
        by_group[f"CN=g{j},OU=JIT,DC=x"] = set(HeldRemoval.objects.filter(batch=batch).values_list("id", flat=True))
    with CaptureQueriesContext(connection) as q:
        tokens, rows = claims.claim_each(_due(), "group_dn", limit=100, attempts=5)
    assert [x["sql"].upper().startswith("UPDATE") for x in q.captured_queries].count(True) == 1
    assert set(tokens) == set(by_group) and len(set(tokens.values())) == 3
    assert {r.attempts for r in rows} == {1} and len(rows) == 12  # as they were
    for group_dn, ids in by_group.items():
        assert set(HeldRemoval.objects.filter(claim_token=tokens[group_dn]).values_list("id", flat=True)) == ids
    assert set(HeldRemoval.objects.values_list("attempts", flat=True)) == {5}
    # One value alone: its token, the same way.
    HeldRemoval.objects.update(claim_token=None, lease_until=None)
    one, rows = claims.claim_each(_due().filter(group_dn="CN=g1,OU=JIT,DC=x"), "group_dn", limit=100)
    assert list(one) == ["CN=g1,OU=JIT,DC=x"]
    assert set(HeldRemoval.objects.filter(claim_token=one["CN=g1,OU=JIT,DC=x"]).values_list("id", flat=True)) == \
        by_group["CN=g1,OU=JIT,DC=x"]


@pytest.mark.django_db
def test_an_execution_may_keep_its_messages_own_token_writing_nothing(settings):
    """GIVEN rows claimed with a token of their message's own WHEN the execution takes them keeping the token
    THEN it gets them and writes nothing while the lease has more than two thirds of it left; a lease closer to
    its end is pushed out first; a second delivery at the same time gets the rows too (its work is idempotent,
    and recording is conditional on the claim); a message whose claim lapsed and was claimed again, or that
    already ended, gets nothing."""
    settings.JITAD_LEASE_SECONDS = 10
    ids = _rows(3)
    token, _ = claims.claim(_due(), limit=10)
    claimed = set(HeldRemoval.objects.filter(pk__in=ids).values_list("id", "claim_token", "lease_until"))
    mine, rows = claims.take(HeldRemoval, ids, str(token), keep=True)
    assert mine == token and sorted(r.pk for r in rows) == ids
    assert all(r.claim_token == token for r in rows)
    assert set(HeldRemoval.objects.filter(pk__in=ids).values_list("id", "claim_token", "lease_until")) == claimed
    assert sorted(r.pk for r in claims.take(HeldRemoval, ids, token, keep=True)[1]) == ids  # the duplicate

    soon = timezone.now() + timedelta(seconds=2)
    HeldRemoval.objects.filter(pk=ids[0]).update(lease_until=soon)
    claims.take(HeldRemoval, ids, token, keep=True)
    assert HeldRemoval.objects.get(pk=ids[0]).lease_until > soon + timedelta(seconds=5)

    HeldRemoval.objects.filter(pk__in=ids).update(lease_until=timezone.now() - timedelta(seconds=1))
    newer, _ = claims.claim(_due(), limit=10)
    assert claims.take(HeldRemoval, ids, token, keep=True)[1] == []  # claimed again after its lease lapsed
    claims.release(HeldRemoval, ids, newer)
    assert claims.take(HeldRemoval, ids, newer, keep=True)[1] == []  # ended


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


# -- a failed attempt --------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_failed_attempt_counts_schedules_and_drops_the_claim_for_the_holder_only(settings):
    """GIVEN two rows claimed by one execution and a third claimed by another WHEN the first execution
    records a transient failure on all three THEN only its own two are counted, keep the error, are due
    again after a backoff and are free for the sweep; the other holder's row is untouched."""
    settings.JITAD_RETRY_BASE_SECONDS, settings.JITAD_RETRY_MAX_SECONDS = 10, 1000
    ids = _rows(3)
    token, _ = claims.claim(_due().filter(pk__in=ids[:2]), limit=10)
    other, _ = claims.claim(_due().filter(pk=ids[2]), limit=10)
    before = timezone.now()
    failed = claims.attempt_failed(HeldRemoval, ids, token, error="DirectoryUnavailable: the DC went away")
    assert sorted(f.row.pk for f in failed) == ids[:2]
    assert all(not f.exhausted and f.before == HeldRemoval.State.CONFIRMED for f in failed)
    for row in HeldRemoval.objects.filter(pk__in=ids[:2]):
        assert (row.attempts, row.claim_token, row.lease_until) == (1, None, None)
        assert row.last_error == "DirectoryUnavailable: the DC went away"
        # the first step is JITAD_RETRY_BASE_SECONDS: between half of it and all of it
        assert before + timedelta(seconds=5) <= row.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    untouched = HeldRemoval.objects.get(pk=ids[2])
    assert (untouched.attempts, untouched.claim_token, untouched.last_error) == (0, other, "")


@pytest.mark.django_db
def test_a_failure_past_the_limit_or_permanent_is_exhausted_and_the_domain_marks_and_reports_it(settings):
    """GIVEN a limit of 3 attempts WHEN a row fails for the third time THEN it is exhausted: the domain's
    ``mark`` moves it to its failed state (saved with the engine's fields), ``report`` sees every failure
    with its state before, in the same transaction, and the wait is the longest one; WHEN a failure is
    permanent THEN the first attempt is already exhausted."""
    settings.JITAD_RETRY_BASE_SECONDS, settings.JITAD_RETRY_MAX_SECONDS = 10, 1000
    ids = _rows(2)
    HeldRemoval.objects.filter(pk=ids[0]).update(attempts=2)
    token, _ = claims.claim(_due(), limit=10)
    reported = []

    def mark(row, exhausted, now):
        if exhausted:
            row.state = HeldRemoval.State.DISCARDED
            return ["state"]

    def report(failures):
        assert connection.in_atomic_block
        reported.extend((f.row.pk, f.before, f.row.state, f.exhausted) for f in failures)

    before = timezone.now()
    claims.attempt_failed(HeldRemoval, ids, token, error="x" * 5000, max_attempts=3, mark=mark, report=report)
    confirmed, discarded = HeldRemoval.State.CONFIRMED, HeldRemoval.State.DISCARDED
    assert reported == [(ids[0], confirmed, discarded, True), (ids[1], confirmed, confirmed, False)]
    gave_up = HeldRemoval.objects.get(pk=ids[0])
    assert (gave_up.state, gave_up.attempts, len(gave_up.last_error)) == (discarded, 3, claims.ERROR_MAX)
    assert gave_up.next_attempt_at >= before + timedelta(seconds=500)  # the cap's wait, not the step's

    token, _ = claims.claim(HeldRemoval.objects.filter(pk=ids[1]), limit=1)
    (permanent,) = claims.attempt_failed(HeldRemoval, [ids[1]], token, error="refused", transient=False, mark=mark)
    assert permanent.exhausted and HeldRemoval.objects.get(pk=ids[1]).state == discarded


@pytest.mark.django_db
def test_a_lapsed_claim_records_nothing():
    """GIVEN an execution whose claim lapsed and was claimed again by a sweep WHEN it records its failure
    THEN nothing changes: the row is the new holder's."""
    (pk,) = _rows(1)
    token, _ = claims.claim(_due(), limit=1)
    HeldRemoval.objects.filter(pk=pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    newer, _ = claims.claim(_due(), limit=1)
    assert claims.attempt_failed(HeldRemoval, [pk], token, error="late") == []
    row = HeldRemoval.objects.get(pk=pk)
    assert (row.attempts, row.claim_token, row.last_error) == (0, newer, "")
