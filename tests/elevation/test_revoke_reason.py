"""An administrator's reason for revoking is told to the holder: in the mail and on My access.

Runs the real path: Samba DC, worker, SMTP server on 127.0.0.1, the admin's revoke page.
"""
import uuid

from django.contrib.auth.models import User
from django.urls import reverse

from jitad.elevation import services
from jitad.elevation.models import Grant
from tests.support.waiting import wait_for

from .helpers import wait_state

REASON = "Ticket INC123456 closed; the rest of the change waits for Monday"


def test_admin_revoke_reason_reaches_the_holders_mail_and_page(live, smtp_sink, make_user, make_target, verified_client):
    """GIVEN alice's active grant and an approver of its target
    WHEN the approver revokes it in the admin with a reason
    THEN the grant records the reason, alice's "(revoked)" mail quotes it, and her
    My access history shows it next to the ended grant."""
    target = make_target(approver_groups=("approvers",))
    alice = make_user("rva", groups=("admins",))
    lead = make_user("rvl", groups=("approvers",))
    address = f"alice-{uuid.uuid4().hex[:6]}@example.org"
    User.objects.filter(id=alice.id).update(email=address)
    alice.refresh_from_db()
    req = services.request_create(requester=alice, target=target, duration_minutes=30)
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)

    admin = verified_client(lead)
    response = admin.post(reverse("admin:elevation_grant_revoke", args=[grant.pk]), {"reason": REASON})
    assert response.status_code == 302
    grant = wait_state(grant.id, Grant.State.REVOKED)
    assert (grant.revoke_reason, grant.revoke_comment) == (Grant.RevokeReason.ADMIN, REASON)

    mail = wait_for(lambda: [m for m in smtp_sink.to(address) if "(revoked)" in m["Subject"]], timeout=30,
                    message="alice's revocation mail")[0]
    body = " ".join(mail.get_content().split())
    assert f'{lead.username} revoked your admin rights on {target.name}' in body
    assert f'Their reason: "{REASON}"' in body

    page = verified_client(alice).get(reverse("elevation:access")).content.decode()
    assert f"Revoked by {lead.username}: {REASON}" in page
