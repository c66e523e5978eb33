"""Network conditions and one-at-a-time targets: a request from outside the policy's networks is refused, with
the address and the networks; a target held by someone else is refused in refuse mode, at creation and again
at the final approval. The last test goes through the portal, a real DC and worker."""
import pytest
from django.urls import reverse

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, Grant, Policy, Target

from .builders import policy, target, user
from .helpers import ad_is_member, ad_user_dn, wait_state


def refused(code: str, fn, **kwargs) -> RequestRefused:
    with pytest.raises(RequestRefused) as info:
        fn(**kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value.message}"
    return info.value


@pytest.fixture
def alice(db):
    return user("alice", "Ops")


@pytest.mark.parametrize("address", ["192.168.1.5", None, "not-an-address"])
def test_outside_the_networks_is_refused_with_the_address_and_the_networks(alice, address):
    srv = target()
    policy(srv, networks=["10.0.0.0/8", "2001:db8::/32"])
    e = refused("network_refused", services.request_create, requester=alice, target=srv, client_ip=address)
    assert "10.0.0.0/8, 2001:db8::/32" in e.message
    assert (address or "an unknown address") in e.message
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize("address", ["10.1.2.3", "2001:db8::7", "::ffff:10.0.0.9"])
def test_inside_the_networks_is_accepted_and_the_address_kept(alice, address):
    srv = target()
    policy(srv, networks=["10.0.0.0/8", "2001:db8::/32"])
    req = services.request_create(requester=alice, target=srv, client_ip=address)
    assert req.client_ip is not None
    created = AuditEvent.objects.get(object_type="request", object_id=str(req.pk), action="request.created")
    assert created.data["client_ip"] == address


def test_without_networks_any_address_is_accepted(alice):
    srv = target()
    policy(srv)
    assert services.request_create(requester=alice, target=srv, client_ip="203.0.113.9").client_ip == "203.0.113.9"


def test_a_held_target_in_refuse_mode_is_refused_at_creation_and_at_approval(db):
    """GIVEN a one-at-a-time target (refuse) and two pending requests WHEN bob's is approved THEN alice's
    final approval is refused naming bob, and a new request of hers is refused too; in wait mode it is accepted."""
    srv = target(exclusive=Target.Exclusive.REFUSE)
    policy(srv, eligible_groups=["Ops"])
    alice, bob, lead = user("alice", "Ops"), user("bob", "Ops"), user("lead", "Leads")
    first = services.request_create(requester=alice, target=srv)
    second = services.request_create(requester=bob, target=srv)
    services.request_approve(request=second, approver=lead)
    e = refused("target_held", services.request_approve, request=first, approver=lead)
    assert "held by bob until" in e.message
    assert AccessRequest.objects.get(pk=first.pk).state == AccessRequest.State.PENDING
    refused("target_held", services.request_create, requester=alice, target=srv)
    Target.objects.filter(pk=srv.pk).update(exclusive=Target.Exclusive.WAIT)
    srv.refresh_from_db()
    assert services.request_create(requester=alice, target=srv).state == AccessRequest.State.PENDING


def test_a_portal_request_from_outside_the_networks_is_refused(live, make_user, make_target, verified_client,
                                                              ldap_admin, samba_dc):
    """GIVEN a policy open to 10.0.0.0/8 only WHEN a request comes from 192.0.2.7 through the portal THEN it is
    refused with the address shown; WHEN it comes from 10.2.3.4 THEN the worker makes the membership."""
    tgt = make_target(mode="auto", networks=["10.0.0.0/8"])
    alice = make_user("alice", groups=["admins"])
    c = verified_client(alice)
    url = f"{reverse('elevation:request-new')}?target={tgt.pk}"
    page = c.post(url, {"duration_minutes": "30", "justification": "patching"}, REMOTE_ADDR="192.0.2.7")
    assert page.status_code == 400  # the form again, with the refusal
    assert "192.0.2.7" in page.content.decode() and "10.0.0.0/8" in page.content.decode()
    assert not AccessRequest.objects.filter(requester=alice).exists()

    done = c.post(url, {"duration_minutes": "30", "justification": "patching"}, REMOTE_ADDR="10.2.3.4")
    assert done.status_code == 302
    req = AccessRequest.objects.get(requester=alice)
    assert req.client_ip == "10.2.3.4"
    wait_state(Grant.objects.get(request=req).id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, tgt.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    assert Policy.objects.get(targets=tgt).networks == ["10.0.0.0/8"]


def test_an_extension_is_asked_from_the_policys_networks_too(alice):
    srv = target()
    p = policy(srv, approval_mode=Policy.ApprovalMode.AUTO, approvals_required=0)
    grant = Grant.objects.get(request=services.request_create(requester=alice, target=srv, duration_minutes=30))
    Policy.objects.filter(pk=p.pk).update(networks=["10.0.0.0/8"])
    refused("network_refused", services.request_extend, grant=grant, requester=alice, duration_minutes=30,
            client_ip="198.51.100.4")
    ext = services.request_extend(grant=grant, requester=alice, duration_minutes=30, client_ip="10.0.0.4")
    assert ext.client_ip == "10.0.0.4" and ext.state == AccessRequest.State.APPROVED
