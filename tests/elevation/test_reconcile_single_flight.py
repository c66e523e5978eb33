"""One reconcile at a time: the reconcile task takes the engine's lease ``reconcile`` first.

A reconcile that outlasts its interval, or two schedulers sending the task together, must
never have two runs judging (and removing from, or holding) the same groups at once.
"""
import pytest

from jitad.elevation import services
from jitad.elevation.services.reconciler import RECONCILE_LEASE
from jitad.engine.models import Lease
from jitad.engine.services import lease_release, lease_take

pytestmark = pytest.mark.django_db


def test_a_reconcile_is_skipped_while_another_process_holds_the_lease(monkeypatch):
    """GIVEN another process running a reconcile (it holds the lease) WHEN the task runs here THEN it
    does not reconcile; once the other run ends, the next one does, and gives the lease back."""
    runs = []
    monkeypatch.setattr("jitad.elevation.services.reconciler.reconcile", lambda: runs.append(1) or {})
    assert lease_take(name=RECONCILE_LEASE, holder="other-host:1:abc", seconds=300)

    assert services.reconcile_once() is None
    assert runs == []

    lease_release(name=RECONCILE_LEASE, holder="other-host:1:abc")
    assert services.reconcile_once() == {}
    assert runs == [1]
    assert lease_take(name=RECONCILE_LEASE, holder="third-host:1:def", seconds=1)  # handed back at the end


def test_a_reconcile_that_fails_gives_the_lease_back(monkeypatch):
    """GIVEN a reconcile that raises WHEN it ends THEN the lease is free at once, not after it lapses."""
    def failing():
        raise RuntimeError("DC went away")

    monkeypatch.setattr("jitad.elevation.services.reconciler.reconcile", failing)
    with pytest.raises(RuntimeError):
        services.reconcile_once()
    assert lease_take(name=RECONCILE_LEASE, holder="other-host:1:abc", seconds=1)
    assert Lease.objects.get(name=RECONCILE_LEASE).holder == "other-host:1:abc"
