"""A notification to many people publishes one broker message from the caller, not one per delivery."""
import pytest
from django.contrib.auth.models import User

from jitad.engine import queue
from jitad.notifications.models import Delivery
from jitad.notifications.services import notification_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(queue, "enqueue", lambda name, *args, **kw: sent.append((name, args)) or True)
    return sent


def test_sixty_approvers_cost_the_request_one_message(published, django_capture_on_commit_callbacks):
    people = [User.objects.create_user(f"approver{i}", email=f"approver{i}@jitad.test") for i in range(60)]
    with django_capture_on_commit_callbacks(execute=True):
        notification_create(event="request.created", subject="A request to decide", body="...", people=people)
    assert Delivery.objects.filter(state=Delivery.State.PENDING).count() == 60
    assert [name for name, _args in published] == ["jitad.notifications.send_batch"]
    ids, _token = published[0][1]
    assert sorted(ids) == sorted(Delivery.objects.values_list("id", flat=True))


def test_one_delivery_is_one_message(published, django_capture_on_commit_callbacks):
    alice = User.objects.create_user("alice", email="alice@jitad.test")
    with django_capture_on_commit_callbacks(execute=True):
        notification_create(event="grant.active", subject="You are admin", body="...", people=[alice])
    assert [name for name, _args in published] == ["jitad.notifications.send"]
