"""Access history leaves out grants that never held the right: scheduled, waiting, or ended before they started."""
import pytest

from jitad.elevation.models import Grant
from jitad.reports.history.selectors import access_at

from .history_builders import at, grant, policy, target, user

pytestmark = pytest.mark.usefixtures("db")


def test_scheduled_and_never_started_grants_are_not_holdings():
    """GIVEN on SRV01 an active grant, a scheduled one (created, not yet started) and one cancelled before it
    started (nothing ever in AD) WHEN the history is asked over their whole span THEN only the active one is there."""
    srv = target("SRV01")
    policy(srv)
    held = grant(srv, user("alice"), start=at(-2))
    waiting = grant(srv, user("bob"), start=at(-2), state=Grant.State.SCHEDULED, activated=False)
    cancelled = grant(srv, user("carol"), start=at(-2), end=at(-1), activated=False,
                      reason=Grant.RevokeReason.RELEASED)
    Grant.objects.filter(pk__in=[waiting.pk, cancelled.pk]).update(user_dn="", user_sid="")
    assert [h.record_id for h in access_at(target=srv, start=at(-3), end=at(1))] == [held.pk]
