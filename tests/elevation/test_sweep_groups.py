"""The sweep's claims of due revocations, on rows alone: whole groups per claim, one message per group, single-flight.

A mass expiry's grants are interleaved across groups in real life (people ask one at a time);
the sweep must still hand out each group's grants together, so each group costs one modify.
"""
import importlib
import random
from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jitad.elevation.models import AccessRequest, Grant
from jitad.elevation.services import grant_sweep
from jitad.elevation.services.grant_sweep import SWEEP_LEASE, _revocations_claim, sweep_once
from jitad.engine.models import Lease
from jitad.engine.services import lease_release, lease_take

from . import builders

pytestmark = pytest.mark.django_db


def _due_wave(n_groups: int, per_group: int, *, seed: int = 7) -> dict[str, set[int]]:
    """``n_groups`` × ``per_group`` active grants, all expired, inserted in a shuffled order; {group: grant ids}."""
    now = timezone.now()
    targets = [builders.target(f"SRV{j:02d}") for j in range(n_groups)]
    pol = builders.policy(*targets, name="wave")
    people = [builders.user(f"u{i}") for i in range(per_group)]
    pairs = [(j, t, p) for j, t in enumerate(targets) for p in people]
    random.Random(seed).shuffle(pairs)
    groups: dict[str, set[int]] = defaultdict(set)
    for i, (j, t, p) in enumerate(pairs):
        req = AccessRequest.objects.create(requester=p, target=t, policy=pol, duration_minutes=60,
                                           state=AccessRequest.State.APPROVED)
        g = Grant.objects.create(request=req, user=p, target=t, group_dn=t.group_dn, state=Grant.State.ACTIVE,
                                 user_dn=f"CN={p.username},OU=People,DC=jitad,DC=test", activated_at=now,
                                 expires_at=now - timedelta(seconds=1 + (i % 5) + 10 * j))  # group j: older
        groups[t.group_dn].add(g.pk)
    return groups


def _claimed(limit: int) -> list[tuple[str, list[int]]]:
    """The messages the sweep sends, each as (its group, its grant ids); fails on a message mixing groups."""
    sent = []
    _revocations_claim(timezone.now(), send=lambda ids, token, _end: sent.append(list(ids)), limit=limit)
    by_id = dict(Grant.objects.values_list("id", "group_dn"))
    for ids in sent:
        assert len({by_id[i] for i in ids}) == 1, f"a message mixes groups: {ids}"
    return [(by_id[ids[0]], ids) for ids in sent]


@pytest.mark.parametrize("limit", [1000, 25, 11])
def test_interleaved_grants_go_out_one_message_per_group(limit):
    """GIVEN 6 groups × 10 expired grants inserted interleaved WHEN the sweep claims with a batch of
    ``limit`` THEN every message holds one group's grants only, and each group is one message: a
    claim never cuts a group (a batch smaller than a group is the only exception, below)."""
    groups = _due_wave(6, 10)
    sent = _claimed(limit)
    assert len(sent) == 6, sent
    assert {group: set(ids) for group, ids in sent} == groups
    assert Grant.objects.filter(state=Grant.State.REVOKING).count() == 60


def test_a_claim_writes_each_grant_once_with_its_new_state_and_the_reason_it_ends():
    """GIVEN expired grants, one of them failed and one already ending for a reason of its own WHEN the sweep
    claims them THEN one UPDATE of the grants does it (token, lease, state, attempts, reason): each further
    UPDATE of a row in the claim's transaction rewrote every index of the table again and re-checked its
    foreign keys. Each grant's reason, count of attempts and audit entry are as before."""
    groups = _due_wave(2, 3)
    failed, asked, *_ = sorted(i for ids in groups.values() for i in ids)
    Grant.objects.filter(pk=failed).update(state=Grant.State.GRANT_FAILED, attempts=4,
                                           next_attempt_at=timezone.now() + timedelta(hours=1))
    Grant.objects.filter(pk=asked).update(revoke_reason=Grant.RevokeReason.ADMIN)
    with CaptureQueriesContext(connection) as q:
        sent = _claimed(1000)
    updates = [x["sql"] for x in q.captured_queries if x["sql"].startswith('UPDATE "elevation_grant"')]
    assert len(updates) == 1, updates
    assert sum(len(ids) for _g, ids in sent) == 6
    rows = {g.pk: g for g in Grant.objects.all()}
    assert {g.state for g in rows.values()} == {Grant.State.REVOKING}
    assert {g.attempts for g in rows.values()} == {0} and {g.next_attempt_at for g in rows.values()} == {None}
    assert rows[failed].revoke_reason == Grant.RevokeReason.FAILED
    assert rows[asked].revoke_reason == Grant.RevokeReason.ADMIN
    assert {g.revoke_reason for pk, g in rows.items() if pk not in (failed, asked)} == {Grant.RevokeReason.EXPIRED}
    from jitad.audit.models import AuditEvent
    audited = {int(e.object_id): (e.before, e.reason) for e in AuditEvent.objects.filter(action="grant.revoking")}
    assert audited[failed] == (Grant.State.GRANT_FAILED, Grant.RevokeReason.FAILED)
    assert audited[asked] == (Grant.State.ACTIVE, Grant.RevokeReason.ADMIN)
    assert len(audited) == 6


def test_each_groups_removal_carries_a_token_of_its_own_and_keeps_it(monkeypatch):
    """GIVEN expired grants of three groups, interleaved WHEN the sweep claims them in one claim THEN each
    group's message carries a token of its own, naming that group's grants alone; WHEN a removal's execution
    takes them THEN it keeps the token: it writes no grant before its work (a swap of tokens wrote every
    grant once more)."""
    grant_revoke = importlib.import_module("jitad.elevation.services.grant_revoke")
    groups = _due_wave(3, 4)
    sent = []
    _revocations_claim(timezone.now(), send=lambda ids, token, _end: sent.append((list(ids), token)), limit=1000)
    assert len(sent) == 3 and len({token for _ids, token in sent}) == 3
    for ids, token in sent:
        assert set(Grant.objects.filter(claim_token=token).values_list("id", flat=True)) == set(ids)
    assert {frozenset(ids) for ids, _t in sent} == {frozenset(ids) for ids in groups.values()}

    ids, token = sent[0]
    taken = []
    monkeypatch.setattr(grant_revoke, "_revoke", lambda grants, mine: taken.append((sorted(g.id for g in grants), mine)))
    claimed = set(Grant.objects.filter(id__in=ids).values_list("id", "claim_token", "lease_until", "state"))
    grant_revoke.grants_revoke_execute(grant_ids=ids, token=str(token))
    assert taken == [(sorted(ids), token)]
    assert set(Grant.objects.filter(id__in=ids).values_list("id", "claim_token", "lease_until", "state")) == claimed


def test_a_group_larger_than_the_batch_is_claimed_in_batches_of_its_own():
    groups = _due_wave(2, 12)
    sent = _claimed(5)
    assert sum(len(ids) for _g, ids in sent) == 24
    assert {g for g, _ids in sent} == set(groups)
    for group, ids in sent:
        assert set(ids) <= groups[group]


@override_settings(JITAD_SWEEP_MAX_BATCHES=1)
def test_one_claim_takes_the_groups_whose_grants_expired_first():
    groups = _due_wave(3, 4)
    oldest = "CN=JIT-SRV02-Admins,OU=JIT,DC=jitad,DC=test"  # group 2's grants expired 20 s before group 0's
    assert oldest in groups
    sent = _claimed(4)
    assert [g for g, _ids in sent] == [oldest]


def test_the_sweep_is_single_flight():
    _due_wave(1, 2)
    assert lease_take(name=SWEEP_LEASE, holder="another-process", seconds=60)
    try:
        assert sweep_once() is None
        assert not Grant.objects.filter(state=Grant.State.REVOKING).exists()
    finally:
        lease_release(name=SWEEP_LEASE, holder="another-process")


def test_later_claims_of_one_sweep_hold_their_lease_for_the_messages_queued_before_them(settings):
    """A mass expiry's last groups wait in the queue behind the first: their claims' leases cover
    that wait (JITAD_SWEEP_MESSAGE_SECONDS per message ahead), so no claim lapses before its
    message is read and gets claimed and sent a second time."""
    settings.JITAD_SWEEP_MESSAGE_SECONDS = 2.0
    groups = _due_wave(3, 4)
    before = timezone.now()
    sent = _claimed(4)  # one group per claim
    assert len(sent) == 3
    leases = [set(Grant.objects.filter(id__in=ids).values_list("lease_until", flat=True)) for _g, ids in sent]
    assert all(len(q) == 1 for q in leases), leases
    first, second, third = (q.pop() for q in leases)
    lease = timedelta(seconds=settings.JITAD_LEASE_SECONDS)
    assert before + lease <= first < before + lease + timedelta(seconds=2)
    assert second - first >= timedelta(seconds=1.9)  # one message ahead of it
    assert third - first >= timedelta(seconds=3.9)  # two
    assert {g for g, _ids in sent} == set(groups)


@override_settings(JITAD_SWEEP_BATCH=4, JITAD_SWEEP_MAX_BATCHES=1)
def test_a_sweep_that_stopped_at_its_claim_limit_goes_on_at_once(monkeypatch):
    """GIVEN more due groups than one sweep's claims may take WHEN the sweep runs THEN it sweeps
    again at once until none is left, instead of leaving the rest to the next periodic sweep."""
    groups = _due_wave(3, 4)
    sent = []
    monkeypatch.setattr(grant_sweep, "_enqueue_revoke", lambda ids, token, end=None: sent.append(list(ids)))
    counts = sweep_once()
    assert counts["revoke"] == 12
    assert len(sent) == 3
    assert Grant.objects.filter(state=Grant.State.REVOKING).count() == 12
    assert {frozenset(ids) for ids in sent} == {frozenset(ids) for ids in groups.values()}


@override_settings(JITAD_SWEEP_BATCH=4)
def test_a_sweep_that_lost_its_lease_claims_no_more(monkeypatch):
    """GIVEN a sweep whose lease another process took over (it stalled past the lease) WHEN it
    comes to its next claim THEN it stops: two sweeps never split the same groups."""
    _due_wave(3, 4)
    sent = []

    def send_and_stall(ids, token, end=None):
        sent.append(list(ids))
        Lease.objects.filter(name=SWEEP_LEASE).update(holder="another-process",
                                                       expires_at=timezone.now() + timedelta(seconds=60))

    monkeypatch.setattr(grant_sweep, "_enqueue_revoke", send_and_stall)
    sweep_once()
    assert len(sent) == 1
    assert Grant.objects.filter(state=Grant.State.REVOKING).count() == 4
    assert Lease.objects.get(name=SWEEP_LEASE).holder == "another-process"  # not released by the loser


@override_settings(JITAD_SWEEP_BATCH=4, JITAD_SWEEP_MAX_BATCHES=1)
def test_a_sweep_whose_claims_were_not_full_but_capped_goes_on_too(monkeypatch):
    """Whole groups rarely fill a claim exactly: 3 groups of 3 with claims of 4 take one group each.
    The sweep goes on because it used every claim it may make, not because the claims were full."""
    groups = _due_wave(3, 3)
    sent = []
    monkeypatch.setattr(grant_sweep, "_enqueue_revoke", lambda ids, token, end=None: sent.append(list(ids)))
    assert sweep_once()["revoke"] == 9
    assert {frozenset(ids) for ids in sent} == {frozenset(ids) for ids in groups.values()}


@override_settings(JITAD_SWEEP_BATCH=4, JITAD_SWEEP_MAX_BATCHES=1, JITAD_SWEEP_MESSAGE_SECONDS=2.0)
def test_the_queue_allowance_carries_over_from_one_pass_of_a_sweep_to_the_next(monkeypatch):
    _due_wave(3, 4)
    sent = []
    monkeypatch.setattr(grant_sweep, "_enqueue_revoke", lambda ids, token, end=None: sent.append(list(ids)))
    sweep_once()
    assert len(sent) == 3
    leases = [set(Grant.objects.filter(id__in=ids).values_list("lease_until", flat=True)).pop() for ids in sent]
    assert leases[2] - leases[0] >= timedelta(seconds=3.9)  # two messages ahead of the third, across passes
