"""Exclusive checkout: one holder per account, however many responders ask at the same moment."""
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction

from jitad.breakglass import services
from jitad.breakglass.errors import BreakglassRefused
from jitad.breakglass.models import Checkout, SealedAccount

pytestmark = pytest.mark.django_db(transaction=True)


def _responders(django_user_model, n):
    group = Group.objects.get_or_create(name="bg-responders")[0]
    people = []
    for i in range(n):
        user = django_user_model.objects.create_user(username=f"racer{i}")
        user.groups.add(group)
        people.append(user)
    return people


def _sealed_row(name="bg-da-race"):
    return SealedAccount.objects.create(name=name, state=SealedAccount.State.SEALED, seal_id="BG-TEST-0000-0001",
                                        responder_groups=["bg-responders"], approver_groups=["bg-approvers"])


def test_simultaneous_checkouts_cannot_both_win(django_user_model):
    """GIVEN six responders WHEN they all ask for the same sealed account at the same instant (half of them in
    emergency mode, which opens at once) THEN exactly one checkout is live, the others are told the account is
    taken (or, waiting for approvers, were superseded by an emergency), and the account is checked out once."""
    account = _sealed_row()
    people = _responders(django_user_model, 6)
    barrier = threading.Barrier(len(people))
    outcomes: list[object] = []
    lock = threading.Lock()

    def ask(i, user):
        try:
            barrier.wait()
            result = services.checkout_request(
                account=SealedAccount.objects.get(pk=account.pk), requester=user, incident_ref=f"INC-{i}",
                reason="racing for the same account", runbook_slug="dc-outage", duration_minutes=30,
                emergency=i % 2 == 0)
        except BreakglassRefused as e:
            result = e
        except Exception as e:  # noqa: BLE001 - anything else is a failure the assertions report
            result = e
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=ask, args=(i, u)) for i, u in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    made = [o for o in outcomes if isinstance(o, Checkout)]
    refusals = [o for o in outcomes if isinstance(o, BreakglassRefused)]
    assert len(outcomes) == len(people) and len(made) + len(refusals) == len(people), outcomes
    assert all(r.code == "account_busy" for r in refusals), outcomes
    live = Checkout.objects.filter(account=account, state__in=Checkout.LIVE_STATES)
    assert live.count() == 1, list(Checkout.objects.values_list("holder__username", "mode", "state"))
    # An emergency may supersede a request still waiting for approvers (cancelled, never opened);
    # it never displaces an open checkout.
    for other in Checkout.objects.filter(account=account).exclude(pk=live.get().pk):
        assert other.state == Checkout.State.CANCELLED and other.mode == Checkout.Mode.DUAL
        assert other.opened_at is None and other.revealed_at is None
    assert Checkout.objects.filter(account=account, opened_at__isnull=False).count() <= 1
    assert SealedAccount.objects.get(pk=account.pk).state == SealedAccount.State.CHECKED_OUT


def test_the_database_itself_refuses_a_second_live_checkout(django_user_model):
    """The partial unique constraint is the backstop behind the service's row lock."""
    account = _sealed_row("bg-da-constraint")
    a, b = _responders(django_user_model, 2)
    common = {"account": account, "incident_ref": "INC-1", "reason": "x" * 20, "duration_minutes": 30}
    Checkout.objects.create(holder=a, state=Checkout.State.OPEN, **common)
    with pytest.raises(IntegrityError), transaction.atomic():
        Checkout.objects.create(holder=b, state=Checkout.State.PENDING, **common)
    # Ended checkouts do not count: history may hold any number.
    Checkout.objects.create(holder=b, state=Checkout.State.CLOSED, **common)
    Checkout.objects.create(holder=b, state=Checkout.State.DENIED, **common)
