"""Access history of a grant that went through the real lifecycle: real DC, real worker, then a prune."""
from django.utils import timezone

from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.reports.history.rows import Source
from jitad.reports.history.selectors import access_at
from jitad.reports.services.retention import retention_prune
from tests.elevation.helpers import expire_now, wait_state


def test_a_grant_that_ended_keeps_its_history_and_a_prune_keeps_recent_ones(live, make_user, make_target):
    """GIVEN a manual policy; alice requests with a ticket, bob approves, the worker adds her in AD, the sweeper
    removes her at expiry
    WHEN the history is asked for a moment while it was active, and after it ended
    THEN the grant is there with bob's approval, the justification and ticket, the AD times, and how it ended;
    a prune with 30 days keeps it (it ended minutes ago) and it is still there."""
    target = make_target(mode="manual")
    alice = make_user("alice", groups=["admins"])
    bob = make_user("bob", groups=["approvers"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30,
                                  justification="patch the backup agent", ticket="CHG-2026")
    services.request_approve(request=req, approver=bob, comment="go ahead")
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)
    while_active = timezone.now()
    expire_now(grant.id)
    grant = wait_state(grant.id, Grant.State.REVOKED)

    rows = access_at(target=target, start=while_active)
    assert [(h.source, h.principal, h.record_id) for h in rows] == [(Source.GRANT, alice.username, grant.id)]
    h = rows[0]
    assert (h.start, h.end) == (grant.activated_at, grant.revoked_at)
    assert (h.evidence["justification"], h.evidence["ticket"]) == ("patch the backup agent", "CHG-2026")
    assert [(a["approver"], a["comment"]) for a in h.evidence["approvals"]] == [(bob.username, "go ahead")]
    assert h.evidence["revoke_reason"] == Grant.RevokeReason.EXPIRED
    assert access_at(person=alice, start=timezone.now()) == []  # over now

    assert retention_prune(days=30, audit_days=0).counts.get("grants", 0) == 0
    assert [r.record_id for r in access_at(person=alice, start=while_active)] == [grant.id]
