"""A request becomes an AD membership and the membership goes on time: real DC, real worker."""
from jitad.audit.models import AuditEvent
from jitad.audit.services import audit_verify
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Grant

from .helpers import ad_is_member, ad_user_dn, expire_now, wait_state


def test_request_approve_grant_expire_revoke(live, make_user, make_target, ldap_admin, samba_dc):
    """GIVEN a manual policy WHEN an approver approves THEN the user is in the AD group;
    WHEN the grant expires THEN the sweeper removes the membership, and the audit trail says so."""
    target = make_target(mode="manual")
    alice = make_user("alice", groups=["admins"])
    bob = make_user("bob", groups=["approvers"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    assert req.state == AccessRequest.State.PENDING
    assert not Grant.objects.filter(request=req).exists()

    services.request_approve(request=req, approver=bob, comment="ok")
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)
    user_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username)
    assert grant.user_dn == user_dn
    assert ad_is_member(ldap_admin, target.group_dn, user_dn)

    expire_now(grant.id)
    grant = wait_state(grant.id, Grant.State.REVOKED)
    assert grant.revoke_reason == Grant.RevokeReason.EXPIRED
    assert grant.membership_removed is True
    assert not ad_is_member(ldap_admin, target.group_dn, user_dn)

    trail = list(AuditEvent.objects.filter(object_type="grant", object_id=str(grant.id)).values_list("action", "before", "after"))
    assert trail == [
        ("grant.created", "", "approved"),
        ("grant.granting", "approved", "granting"),
        ("grant.active", "granting", "active"),
        ("grant.revoking", "active", "revoking"),
        ("grant.revoked", "revoking", "revoked"),
    ]
    req_trail = list(AuditEvent.objects.filter(object_type="request", object_id=str(req.id)).values_list("action", "actor"))
    assert req_trail == [
        ("request.created", alice.username),
        ("request.approval_recorded", bob.username),
        ("request.approved", bob.username),
    ]
    assert audit_verify() == []
