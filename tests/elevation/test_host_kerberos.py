"""Grant, verify on the server, revoke: the real worker reaches the WinRM test host over Kerberos.

The worker logs on as jitad's service principal with the keytab exported from the test DC
(JITAD_KERBEROS_*: no password), asks Samba's KDC for HTTP/<the target's hostname>, and the
test host accepts with that SPN's keytab; every WS-Man message over HTTP is sealed.
"""
import pytest

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import Grant
from tests.support.waiting import wait_for

from .helpers import ad_is_member, ad_sid, ad_user_dn, expire_now, local_admin_entry, wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def test_grant_verify_revoke_over_kerberos(live, make_user, make_target, make_host, ldap_admin, samba_dc,
                                           kerberos_realm):
    """GIVEN a server that speaks Kerberos only, holding the JIT group in local Administrators, and a target
    naming it by its SPN's host name WHEN a grant is applied THEN the worker verifies it there over Kerberos and
    marks it active; WHEN it expires THEN the membership goes and the server confirms the user is no longer admin."""
    host = make_host(auth="kerberos")
    target = make_target(winrm_url=host.url, winrm_transport="kerberos", hostname=kerberos_realm.host_name)
    name = target.group_dn.split(",", 1)[0].split("=", 1)[1]
    with host.lock:
        host.admins.append(local_admin_entry(ad_sid(ldap_admin, target.group_dn), f"WinNT://JITAD/{name}"))
    alice = make_user("alice", groups=["admins"])

    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)
    assert grant.host_verified_at is not None and "is in local Administrators" in grant.host_detail
    assert [c.script for c in host.calls] == ["local_admins"]

    expire_now(grant.id)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.VERIFIED).first(),
                     timeout=30, message="the revocation confirmed on the server over Kerberos")
    assert grant.state == Grant.State.REVOKED and "no longer a local admin" in grant.host_detail
    assert not ad_is_member(ldap_admin, target.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    actions = list(AuditEvent.objects.filter(object_type="grant", object_id=str(grant.id)).values_list("action", flat=True))
    assert actions[-3:] == ["grant.revoking", "grant.revoked", "grant.host_verified"]
    # Every call was jitad's service principal, authenticated by Kerberos, each message sealed.
    assert [c.script for c in host.calls] == ["local_admins", "local_admins"]
    assert {r.user for r in host.requests} == {kerberos_realm.principal}
    assert all(r.encrypted for r in host.requests) and host.auth_failures == 0 and not host.errors


def test_a_kerberos_target_the_kdc_does_not_know_is_unverified_with_the_reason(
        live, make_user, make_target, make_host, ldap_admin, alert_sink, kerberos_realm):
    """GIVEN a target whose hostname has no SPN in AD WHEN a grant is applied THEN it is unverified, not retried
    (a refusal), and the reason names the missing SPN."""
    host = make_host(auth="kerberos")
    target = make_target(winrm_url=host.url, winrm_transport="kerberos", hostname="nospn.jitad.test")
    alice = make_user("alice", groups=["admins"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    grant = wait_state(req.grant.id, Grant.State.UNVERIFIED)
    assert "Server not found in Kerberos database" in grant.last_error and "HTTP/nospn.jitad.test" in grant.last_error
    assert not host.requests
