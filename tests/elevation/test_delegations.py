"""Deputies on the real database: who may delegate what, for how long, who ends it, who is told, who sees it.

The services are the authority (the portal, admin and API only call them); the pages are
checked for what each person sees. Deciding as a deputy is the approval service's, and
is proved end to end in test_delegations_api.py against a real DC and worker.
"""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.accounts.mfa import MfaStep
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import Delegation
from jitad.elevation.selectors.delegations import (
    approver_in_own_right,
    delegation_visible,
    delegations_of,
    delegations_running,
    shows_delegations,
)
from jitad.elevation.services.delegations import delegation_create, delegation_revoke
from jitad.notifications.models import Notification
from tests.support.mfa import stale_age

from .builders import policy, target, user

pytestmark = pytest.mark.usefixtures("db")
PAGE = reverse("elevation:delegations")
STEP = MfaStep(method="totp", verified_at=timezone.now())


def person(name: str, *groups: str, **fields):
    u = user(name, *groups)
    u.email = f"{name}@example.org"
    for k, v in fields.items():
        setattr(u, k, v)
    u.save()
    return u


@pytest.fixture
def w():
    """SRV01 under ops-servers: Ops request, Leads approve. bob is a lead; carol and dave are not."""
    policy(target("SRV01"))
    return {"alice": person("alice", "Ops"), "bob": person("bob", "Leads"), "carol": person("carol", "Ops"),
            "dave": person("dave"), "root": person("root", is_superuser=True, is_staff=True)}


def days(n: float):
    return timezone.now() + timedelta(days=n)


def refused(code: str, **kwargs):
    with pytest.raises(RequestRefused) as e:
        delegation_create(**kwargs)
    assert e.value.code == code, e.value.message
    return e.value


# -- creating ------------------------------------------------------------------------------
def test_an_approver_delegates_their_own_right_audited_with_mfa_and_both_are_told(w):
    bob, carol = w["bob"], w["carol"]
    d = delegation_create(delegator=bob, deputy=carol, ends_at=days(7), reason="holiday", mfa=STEP)
    assert (d.delegator, d.deputy, d.created_by, d.mfa_method) == (bob, carol, "bob", "totp")
    assert d.mfa_verified_at == STEP.verified_at
    assert abs((d.starts_at - timezone.now()).total_seconds()) < 60  # default: now
    assert list(delegations_running(deputy=carol)) == [d]
    event = AuditEvent.objects.get(action="delegation.created", object_id=str(d.pk))
    assert (event.actor, event.object_type, event.after, event.reason) == ("bob", "delegation", "running", "holiday")
    assert event.data["delegator"] == "bob" and event.data["deputy"] == "carol" and event.data["mfa_method"] == "totp"
    note = Notification.objects.get(event="delegation.created", object_id=str(d.pk))
    assert set(note.deliveries.values_list("address", flat=True)) == {"bob@example.org", "carol@example.org"}
    assert "carol may decide access requests in bob's place" in note.body


def test_only_an_approver_in_their_own_right_may_delegate(w):
    refused("not_approver", delegator=w["carol"], deputy=w["dave"], ends_at=days(1))
    # a disabled policy's approver groups confer no right
    from jitad.elevation.models import Policy
    Policy.objects.update(enabled=False)
    refused("not_approver", delegator=w["bob"], deputy=w["dave"], ends_at=days(1))
    assert not Delegation.objects.exists()


def test_a_targets_approver_groups_count_as_an_own_right(w):
    target("SRV02", approver_groups=["DBAs"])
    erin = person("erin", "dbas")
    assert approver_in_own_right(user=erin)
    delegation_create(delegator=erin, deputy=w["dave"], ends_at=days(1))


def test_no_chains_a_deputy_cannot_pass_the_right_on(w):
    """GIVEN carol is bob's deputy (running) WHEN carol delegates to dave THEN refused: she has no right of her own."""
    delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(3))
    refused("not_approver", delegator=w["carol"], deputy=w["dave"], ends_at=days(1))
    assert Delegation.objects.count() == 1


def test_the_deputy_is_another_active_person(w):
    refused("deputy_self", delegator=w["bob"], deputy=w["bob"], ends_at=days(1))
    gone = person("gone", is_active=False)
    refused("deputy_unknown", delegator=w["bob"], deputy=gone, ends_at=days(1))
    refused("deputy_unknown", delegator=w["bob"], deputy=None, ends_at=days(1))


def test_only_the_delegator_acts_for_themselves_unless_a_superuser(w):
    refused("not_delegator", delegator=w["bob"], deputy=w["carol"], ends_at=days(1), actor=w["alice"])
    d = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(1), actor=w["root"])
    assert d.created_by == "root"
    event = AuditEvent.objects.get(action="delegation.created", object_id=str(d.pk))
    assert event.actor == "root" and event.data["on_behalf_of"] == "bob"
    # a superuser still cannot give a right the delegator does not have
    refused("not_approver", delegator=w["carol"], deputy=w["dave"], ends_at=days(1), actor=w["root"])


def test_the_period_rules(w, settings):
    bob, carol = w["bob"], w["carol"]
    now = timezone.now()
    refused("starts_in_past", delegator=bob, deputy=carol, starts_at=now - timedelta(minutes=5), ends_at=days(1))
    refused("ends_before_start", delegator=bob, deputy=carol, ends_at=now - timedelta(seconds=1))
    two = days(2)
    refused("ends_before_start", delegator=bob, deputy=carol, starts_at=two, ends_at=two)
    refused("delegation_too_long", delegator=bob, deputy=carol, ends_at=days(90.1))
    refused("delegation_too_long", delegator=bob, deputy=carol, starts_at=days(10), ends_at=days(100.5))
    settings.JITAD_DELEGATION_MAX_DAYS = 14
    refused("delegation_too_long", delegator=bob, deputy=carol, ends_at=days(15))
    refused("reason_too_long", delegator=bob, deputy=carol, ends_at=days(1), reason="x" * 2001)
    assert not Delegation.objects.exists()
    # a start up to a minute ago (clock skew) starts now; a later start is kept
    skewed = delegation_create(delegator=bob, deputy=carol, starts_at=now - timedelta(seconds=30), ends_at=days(1))
    assert skewed.starts_at >= now
    later = delegation_create(delegator=bob, deputy=carol, starts_at=days(3), ends_at=days(16))
    assert later.starts_at > now + timedelta(days=2)
    assert list(delegations_running(deputy=carol)) == [skewed]  # not started yet: not running


def test_the_same_pair_cannot_hold_two_delegations_at_once(w):
    """GIVEN bob's delegation to carol for the coming week WHEN bob names carol again for an overlapping period
    THEN it is refused with the period already running; another deputy, a later period, or the same one after
    the first was ended, are all accepted."""
    bob, carol, alice = w["bob"], w["carol"], w["alice"]
    first = delegation_create(delegator=bob, deputy=carol, ends_at=days(7))
    error = refused("delegation_overlaps", delegator=bob, deputy=carol, starts_at=days(6), ends_at=days(9))
    assert f"delegation #{first.pk}" in error.message and "end it first" in error.message
    assert delegation_create(delegator=bob, deputy=alice, ends_at=days(7)).deputy == alice
    after = delegation_create(delegator=bob, deputy=carol, starts_at=first.ends_at, ends_at=days(9))
    assert after.starts_at == first.ends_at  # touching periods (one ends as the other starts) do not overlap
    delegation_revoke(delegation=first, actor=bob)
    assert delegation_create(delegator=bob, deputy=carol, ends_at=days(2)).deputy == carol


# -- ending --------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["bob", "carol", "root"])
def test_the_delegator_the_deputy_or_a_superuser_ends_it_early(w, who):
    d = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(5))
    delegation_revoke(delegation=d, actor=w[who], reason="back early", mfa=STEP)
    d.refresh_from_db()
    assert d.revoked_at is not None and d.revoked_by == who
    assert not delegations_running(deputy=w["carol"]).exists()
    event = AuditEvent.objects.get(action="delegation.revoked", object_id=str(d.pk))
    assert (event.actor, event.before, event.after, event.reason) == (who, "running", "revoked", "back early")
    assert event.data["mfa_method"] == "totp"
    note = Notification.objects.get(event="delegation.revoked", object_id=str(d.pk))
    assert set(note.deliveries.values_list("address", flat=True)) == {"bob@example.org", "carol@example.org"}


def test_nobody_else_ends_it_and_an_ended_one_cannot_end_again(w):
    d = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(5))
    for other in (w["alice"], w["dave"]):
        with pytest.raises(RequestRefused) as e:
            delegation_revoke(delegation=d, actor=other)
        assert e.value.code == "not_party"
    delegation_revoke(delegation=d, actor=w["bob"])
    with pytest.raises(RequestRefused) as e:
        delegation_revoke(delegation=d, actor=w["carol"])
    assert e.value.code == "already_revoked"
    lapsed = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(1))
    Delegation.objects.filter(pk=lapsed.pk).update(starts_at=days(-3), ends_at=days(-1))
    with pytest.raises(RequestRefused) as e:
        delegation_revoke(delegation=lapsed, actor=w["bob"])
    assert e.value.code == "delegation_ended"
    assert AuditEvent.objects.filter(action="delegation.revoked").count() == 1


def test_a_blocked_delegators_delegation_does_not_run(w):
    d = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(5))
    w["bob"].is_active = False
    w["bob"].save()
    assert d not in delegations_running(deputy=w["carol"])


# -- who sees it ---------------------------------------------------------------------------
def test_only_the_two_people_see_a_delegation(w):
    d = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(5))
    assert delegation_visible(user=w["bob"], delegation_id=d.pk) == d
    assert delegation_visible(user=w["carol"], delegation_id=d.pk) == d
    for other in ("alice", "dave", "root"):
        assert delegation_visible(user=w[other], delegation_id=d.pk) is None
        assert not delegations_of(user=w[other]).exists()
    for junk in ("x", -1, 0, 2**70, None, "1\x00"):
        assert delegation_visible(user=w["bob"], delegation_id=junk) is None


def test_the_page_shows_given_and_received_and_the_deputy_whom_they_decide_for(w, verified_client):
    d = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(5))
    page = verified_client(w["carol"]).get(PAGE).content.decode()
    assert 'id="deciding-for"' in page and "You may decide for <strong>bob</strong> until" in page
    assert f'id="delegation-{d.pk}"' in page and "Decline" in page
    assert 'id="delegation-form"' not in page  # carol has no right of her own to delegate
    assert f'href="{PAGE}"' in page  # the nav offers the page to a deputy
    page = verified_client(w["bob"]).get(PAGE).content.decode()
    assert 'id="delegations-given"' in page and f'id="delegation-{d.pk}"' in page and 'id="delegation-form"' in page
    assert "deciding-for" not in page


def test_the_nav_link_and_page_content_are_for_approvers_and_deputies_only(w, verified_client):
    delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(5))
    assert shows_delegations(user=w["bob"]) and shows_delegations(user=w["carol"])
    assert not shows_delegations(user=w["alice"]) and not shows_delegations(user=w["dave"])
    client = verified_client(w["alice"])  # a requester: no link, and an empty page
    assert f'href="{PAGE}"' not in client.get(reverse("elevation:access")).content.decode()
    page = client.get(PAGE).content.decode()
    assert "bob" not in page and "carol" not in page and 'id="delegation-form"' not in page


def test_the_portal_creates_with_the_sessions_mfa_and_ends(w, verified_client):
    client = verified_client(w["bob"])
    until = timezone.localtime(days(3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(PAGE, {"deputy": "CAROL", "ends_at": until, "reason": "holiday"})
    assert response.status_code == 302, response.content.decode()[:2000]
    d = Delegation.objects.get()
    assert (d.deputy, d.mfa_method) == (w["carol"], "totp")
    response = client.post(PAGE, {"deputy": "bob", "ends_at": until})
    assert response.status_code == 400 and "Nobody can be their own deputy." in response.content.decode()
    response = client.post(PAGE, {"deputy": "nobody", "ends_at": until})
    assert response.status_code == 400 and "active person" in response.content.decode()
    # dave may not end it and does not learn it exists
    assert verified_client(w["dave"]).post(reverse("elevation:delegation-end", args=[d.pk])).status_code == 404
    response = verified_client(w["carol"]).post(reverse("elevation:delegation-end", args=[d.pk]))
    assert response.status_code == 302
    d.refresh_from_db()
    assert d.revoked_by == "carol"


def test_the_portal_needs_fresh_mfa_to_create(w, verified_client):
    client = verified_client(w["bob"], age_seconds=stale_age())
    until = timezone.localtime(days(3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(PAGE, {"deputy": "carol", "ends_at": until})
    assert response.status_code != 302 or "mfa" in response["Location"]
    assert not Delegation.objects.exists()


# -- the admin -----------------------------------------------------------------------------
def test_the_admin_shows_delegations_to_superusers_and_viewers_only(w, verified_client):
    d = delegation_create(delegator=w["bob"], deputy=w["carol"], ends_at=days(5))
    changelist = reverse("admin:elevation_delegation_changelist")
    assert verified_client(w["root"]).get(changelist).status_code == 200
    w["bob"].is_staff = True  # staff, an approver, a delegator: still no view permission
    w["bob"].save()
    assert verified_client(w["bob"]).get(changelist).status_code == 403
    auditor = person("auditor", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_delegation"))
    client = verified_client(auditor)
    assert client.get(changelist).status_code == 200
    assert client.get(reverse("admin:elevation_delegation_add")).status_code == 403
    assert client.get(reverse("admin:elevation_delegation_change", args=[d.pk])).status_code == 200


def test_a_superuser_creates_one_for_an_approver_in_the_admin_audited_with_their_name(w, verified_client):
    client = verified_client(w["root"])
    start = timezone.localtime(timezone.now() + timedelta(minutes=10))
    end = start + timedelta(days=2)
    response = client.post(reverse("admin:elevation_delegation_add"), {
        "delegator": w["bob"].pk, "deputy": w["carol"].pk, "reason": "bob is away",
        "starts_at_0": start.strftime("%Y-%m-%d"), "starts_at_1": start.strftime("%H:%M:%S"),
        "ends_at_0": end.strftime("%Y-%m-%d"), "ends_at_1": end.strftime("%H:%M:%S"),
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    d = Delegation.objects.get()
    assert (d.delegator, d.deputy, d.created_by) == (w["bob"], w["carol"], "root")
    assert AuditEvent.objects.get(action="delegation.created").data["on_behalf_of"] == "bob"
    # a refused one saves nothing and says why
    response = client.post(reverse("admin:elevation_delegation_add"), {
        "delegator": w["carol"].pk, "deputy": w["dave"].pk,
        "ends_at_0": end.strftime("%Y-%m-%d"), "ends_at_1": end.strftime("%H:%M:%S")}, follow=True)
    assert "no approval right to delegate" in response.content.decode()
    assert Delegation.objects.count() == 1
    response = client.post(reverse("admin:elevation_delegation_changelist"),
                           {"action": "end_now", "_selected_action": [d.pk]}, follow=True)
    d.refresh_from_db()
    assert d.revoked_by == "root"
