"""Leases: one holder at a time across processes, taken over when the holder stops renewing."""
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jitad.engine import keeper, services
from jitad.engine.models import Lease
from jitad.engine.selectors import lease_state


@pytest.mark.django_db
def test_lease_is_held_by_one_and_taken_over_only_when_lapsed():
    assert services.lease_take(name="scheduler", holder="a", seconds=30)
    assert services.lease_take(name="scheduler", holder="a", seconds=30)  # renewal
    assert not services.lease_take(name="scheduler", holder="b", seconds=30)
    assert lease_state(name="scheduler").holder == "a"
    Lease.objects.filter(name="scheduler").update(expires_at=timezone.now() - timedelta(seconds=1))  # a died
    assert services.lease_take(name="scheduler", holder="b", seconds=30)
    assert not services.lease_take(name="scheduler", holder="a", seconds=30)  # a came back: b keeps it
    services.lease_release(name="scheduler", holder="b")
    assert services.lease_take(name="scheduler", holder="a", seconds=30)  # released: taken at once


@pytest.mark.django_db(transaction=True)
def test_racing_for_a_lapsed_lease_only_one_wins():
    """GIVEN a lapsed lease WHEN eight threads (each its own database connection) take it at
    the same moment, over and over THEN exactly one wins each round."""
    winners_per_round = []
    for round_ in range(10):
        name = f"race-{round_}"
        Lease.objects.create(name=name, holder="dead", expires_at=timezone.now() - timedelta(seconds=5))
        barrier = threading.Barrier(8)
        wins = []

        def contend(i):
            try:
                barrier.wait()
                if services.lease_take(name=name, holder=f"t{i}", seconds=30):
                    wins.append(i)
            finally:
                connection.close()

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners_per_round.append(len(wins))
        assert lease_state(name=name).holder == f"t{wins[0]}"
    assert winners_per_round == [1] * 10


@pytest.mark.django_db(transaction=True)
def test_claims_held_by_a_live_process_are_renewed_and_lapse_without_it(settings, django_user_model):
    """GIVEN a grant claimed with a short lease WHEN its holder keeps it (keeper.held) THEN the
    lease is pushed forward while the work runs; WHEN the block ends THEN nobody renews it."""
    from jitad.elevation.models import AccessRequest, Grant, Policy, Target

    settings.JITAD_LEASE_SECONDS = 3
    user = django_user_model.objects.create_user("keeper")
    target = Target.objects.create(name="K1", group_dn="CN=g,OU=JIT,DC=x")
    policy = Policy.objects.create(name="k1", approval_mode="auto", eligible_users=["keeper"])
    req = AccessRequest.objects.create(requester=user, target=target, policy=policy, duration_minutes=5)
    token = uuid.uuid4()
    first = timezone.now() + timedelta(seconds=3)
    # An active grant far from its end: no sweep of a live worker elsewhere in the session
    # takes it over once the lease lapses (only the keeper touches it).
    grant = Grant.objects.create(request=req, user=user, target=target, group_dn=target.group_dn,
                                 expires_at=timezone.now() + timedelta(hours=1), state=Grant.State.ACTIVE,
                                 claim_token=token, lease_until=first)
    with keeper.held(Grant, token):
        time.sleep(4)  # longer than the lease: without renewal it would have lapsed
        renewed = Grant.objects.get(pk=grant.pk).lease_until
        assert renewed > timezone.now()
    time.sleep(4)
    assert Grant.objects.get(pk=grant.pk).lease_until < timezone.now()


@pytest.mark.django_db
def test_renewal_never_shortens_a_longer_lease(settings, django_user_model):
    from jitad.elevation.models import AccessRequest, Grant, Policy, Target

    user = django_user_model.objects.create_user("longer")
    target = Target.objects.create(name="K2", group_dn="CN=g,OU=JIT,DC=x")
    policy = Policy.objects.create(name="k2", approval_mode="auto", eligible_users=["longer"])
    req = AccessRequest.objects.create(requester=user, target=target, policy=policy, duration_minutes=5)
    token = uuid.uuid4()
    far = timezone.now() + timedelta(hours=1)  # e.g. a WinRM deadline added on top
    grant = Grant.objects.create(request=req, user=user, target=target, group_dn=target.group_dn,
                                 expires_at=timezone.now(), state=Grant.State.REVOKING, claim_token=token,
                                 lease_until=far)
    with keeper.held(Grant, token):
        assert keeper.renew_now() == 1
    assert Grant.objects.get(pk=grant.pk).lease_until == far


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite locks the whole file)")
@pytest.mark.django_db(transaction=True)
def test_renewal_skips_a_row_locked_elsewhere_instead_of_waiting_for_it(settings, django_user_model):
    """GIVEN two grants of one claim, one of them locked by another transaction (its worker marking it
    done) WHEN the keeper renews THEN it renews the other at once and leaves the locked one to the next
    round: it never queues behind a lock while holding rows the holder may want (a deadlock)."""
    from django.db import transaction

    from jitad.elevation.models import AccessRequest, Grant, Policy, Target

    user = django_user_model.objects.create_user("skiplocked")
    target = Target.objects.create(name="K3", group_dn="CN=g3,OU=JIT,DC=x")
    policy = Policy.objects.create(name="k3", approval_mode="auto", eligible_users=["skiplocked"])
    settings.JITAD_LEASE_SECONDS = 60
    token = uuid.uuid4()
    soon = timezone.now() + timedelta(seconds=20)  # a renewal pushes it to a minute from now
    grants = []
    for _ in range(2):
        req = AccessRequest.objects.create(requester=user, target=target, policy=policy, duration_minutes=5)
        grants.append(Grant.objects.create(request=req, user=user, target=target, group_dn=target.group_dn,
                                           expires_at=timezone.now() + timedelta(hours=1), state=Grant.State.ACTIVE,
                                           claim_token=token, lease_until=soon))
    locked, done = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                list(Grant.objects.select_for_update().filter(pk=grants[0].pk))
                locked.set()
                done.wait(10)  # a renewal that waited for this lock would only return after this
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        with keeper.held(Grant, token):
            renewed = keeper.renew_now()
    finally:
        done.set()
        holder.join()
    assert renewed == 1
    assert Grant.objects.get(pk=grants[0].pk).lease_until == soon
    assert Grant.objects.get(pk=grants[1].pk).lease_until > soon


def test_the_renewal_thread_survives_an_unexpected_error(settings, monkeypatch):
    """GIVEN a claim held WHEN a renewal round fails with an error that is not the database's THEN it is logged and
    the next round runs: the thread does not die and leave every held claim to lapse."""
    from jitad.elevation.models import HeldRemoval

    settings.JITAD_LEASE_SECONDS = 3  # a round every second
    calls = []

    def renew():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("not the database's")
        return 0

    monkeypatch.setattr(keeper, "renew_now", renew)
    with keeper.held(HeldRemoval, "a-token"):
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls) >= 2 and keeper._thread.is_alive()
