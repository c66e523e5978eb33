"""What pages say was delivered (selectors.deliveries_told) reads the delivery's record as it is."""
import pytest

from jitad.notifications.models import Delivery, Notification
from jitad.notifications.selectors import deliveries_told

pytestmark = pytest.mark.django_db


def test_a_pending_delivery_shows_its_last_error_once():
    """GIVEN a pending delivery whose first attempt failed (recorded as "attempt 1: why") WHEN a page asks what was
    delivered THEN the detail is that record, not prefixed with the attempt a second time."""
    note = Notification.objects.create(event="checkout.opened", subject="s", body="b", object_type="checkout",
                                       object_id="7")
    Delivery.objects.create(notification=note, channel="email", destination="alice", address="alice@example.org",
                            state=Delivery.State.PENDING, attempts=1, last_error="attempt 1: SMTP refused")
    [told] = deliveries_told(object_type="checkout", object_id=7, event="checkout.opened")
    assert (told.state, told.detail) == ("pending", "attempt 1: SMTP refused")
