"""Review campaigns on the real database, reading people from the real Samba DC: cadence, reviewers,
reminders, the default at the deadline, removals and exclusions, and two sweeps doing the work once."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from jitad.accounts.mfa import MfaStep
from jitad.audit.models import AuditEvent
from jitad.elevation import services as elevation
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import EligibilityExclusion
from jitad.elevation.selectors.eligibility import policy_for
from jitad.elevation.services.exclusions import eligibility_exclusion_lift
from jitad.notifications.models import Notification
from jitad.reviews import services
from jitad.reviews.errors import ReviewRefused
from jitad.reviews.models import ReviewCampaign, ReviewItem
from tests.elevation.builders import user as local_user

pytestmark = pytest.mark.django_db

MFA = MfaStep(method="totp", verified_at=timezone.now())


def in_group(user, name):
    user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def world(samba_dc, make_user, ad_group, review_policy):
    """alice and carol eligible through an AD group; bob reviews; dave reviews and is himself eligible."""
    alice, carol = make_user("alice"), make_user("carol")
    bob = make_user("bob", groups=["Reviewers"])
    dave = make_user("dave", groups=["Reviewers"])
    for u in (bob, dave):
        u.email = f"{u.username}@jitad.test"
        u.save()
    name, dn = ad_group(alice, carol, dave)
    for u in (alice, carol, dave):
        in_group(u, name)
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "group": name, "group_dn": dn,
            "make_policy": lambda **kw: review_policy(groups=[name], **kw)}


def item_of(campaign, user) -> ReviewItem:
    return campaign.items.get(username=user.username.lower())


def test_sweep_opens_one_campaign_with_the_groups_members_and_keeps_the_cadence(world):
    """GIVEN a policy reviewed every 7 days, eligible through an AD group and one named local user
    WHEN the sweep runs THEN one campaign opens with an item per person read from AD (users linked), the
    reviewers are told; WHEN it runs again, or after the campaign closed but before 7 days THEN nothing opens;
    WHEN 7 days have passed since it opened THEN the next one opens."""
    erin = local_user("erin")
    policy = world["make_policy"](users=["erin"])
    now = timezone.now()
    assert services.reviews_sweep(now=now)["opened"] == 1
    campaign = ReviewCampaign.objects.get(policy=policy)
    assert campaign.state == ReviewCampaign.State.OPEN
    assert campaign.deadline == now + timedelta(minutes=24 * 60)
    assert campaign.rules == policy.review
    items = {i.username: i for i in campaign.items.all()}
    expected = {world[n].username.lower() for n in ("alice", "carol", "dave")} | {"erin"}
    assert set(items) == expected
    assert items[world["alice"].username].user == world["alice"]
    assert items[world["alice"].username].via == [world["group"]]
    assert items[world["alice"].username].user_dn.lower().startswith("cn=")
    assert items["erin"].user == erin and items["erin"].via == ["user"] and items["erin"].user_dn == ""
    opened = Notification.objects.get(event="review.opened", object_id=str(campaign.pk))
    assert {d.address for d in opened.deliveries.all()} == {world["bob"].email, world["dave"].email}
    assert AuditEvent.objects.filter(action="review.opened", object_id=str(campaign.pk)).count() == 1

    assert services.reviews_sweep(now=now + timedelta(minutes=1))["opened"] == 0
    services.campaign_close(campaign=campaign, now=now + timedelta(days=1))
    assert services.reviews_sweep(now=now + timedelta(days=6, hours=23))["opened"] == 0
    assert ReviewCampaign.objects.filter(policy=policy).count() == 1
    assert services.reviews_sweep(now=now + timedelta(days=7))["opened"] == 1
    assert ReviewCampaign.objects.filter(policy=policy).count() == 2


def test_reviewers_decide_others_never_themselves(world):
    """GIVEN an open campaign WHEN someone outside the reviewer groups decides THEN not_reviewer; WHEN dave (a
    reviewer, and eligible) decides his own item THEN self_review; WHEN bob keeps dave with a comment THEN it is
    recorded with the MFA step and audited, and a second decision on an item is already_decided; WHEN no MFA step THEN
    refused; WHEN the deadline has passed THEN campaign_closed."""
    world["make_policy"]()
    now = timezone.now()
    services.reviews_sweep(now=now)
    campaign = ReviewCampaign.objects.get()
    alice, bob, carol, dave = world["alice"], world["bob"], world["carol"], world["dave"]
    with pytest.raises(ReviewRefused) as e:
        services.item_decide(item=item_of(campaign, dave), reviewer=alice, decision="keep", mfa=MFA)
    assert e.value.code == "not_reviewer"
    with pytest.raises(ReviewRefused) as e:
        services.item_decide(item=item_of(campaign, dave), reviewer=dave, decision="keep", mfa=MFA)
    assert e.value.code == "self_review"
    with pytest.raises(ReviewRefused) as e:
        services.item_decide(item=item_of(campaign, dave), reviewer=bob, decision="keep", mfa=None)
    assert e.value.code == "mfa_required"
    with pytest.raises(ReviewRefused) as e:
        services.item_decide(item=item_of(campaign, dave), reviewer=bob, decision="maybe", mfa=MFA)
    assert e.value.code == "decision_invalid"

    item = services.item_decide(item=item_of(campaign, dave), reviewer=bob, decision="keep", comment="on call",
                                mfa=MFA)
    services.item_decide(item=item_of(campaign, alice), reviewer=bob, decision="keep", mfa=MFA)
    assert (item.decision, item.decided_by, item.comment, item.mfa_method, item.by_default) == (
        "keep", bob, "on call", "totp", False)
    event = AuditEvent.objects.get(action="review.item_decided", object_id=str(item.pk))
    assert (event.actor, event.after, event.reason, event.data["mfa_method"]) == (bob.username, "keep", "on call", "totp")
    with pytest.raises(ReviewRefused) as e:
        services.item_decide(item=item_of(campaign, alice), reviewer=dave, decision="remove", mfa=MFA)
    assert e.value.code == "already_decided"

    ReviewCampaign.objects.filter(pk=campaign.pk).update(deadline=now - timedelta(seconds=1))
    with pytest.raises(ReviewRefused) as e:
        services.item_decide(item=item_of(campaign, carol), reviewer=bob, decision="keep", mfa=MFA)
    assert e.value.code == "campaign_closed"


def test_a_reviewers_removal_excludes_at_once_and_lifting_gives_it_back(world):
    """GIVEN alice eligible WHEN bob removes her THEN no eligibility answer offers the policy to her and
    request_create refuses her (not_eligible), her pending request is cancelled, the removal is applied by the sweep once; WHEN an admin lifts the
    exclusion THEN she is eligible again, and both steps are audited."""
    policy = world["make_policy"]()
    alice, bob = world["alice"], world["bob"]
    target = policy.targets.get()
    assert policy_for(user=alice, target=target) == policy
    services.reviews_sweep()
    campaign = ReviewCampaign.objects.get()
    waiting = elevation.request_create(requester=alice, target=target, duration_minutes=30, justification="x")
    services.item_decide(item=item_of(campaign, alice), reviewer=bob, decision="remove", comment="left the team",
                         mfa=MFA)
    waiting.refresh_from_db()
    assert waiting.state == "cancelled"  # nobody approves what she may no longer ask for
    exclusion = EligibilityExclusion.objects.get(policy=policy, user=alice, lifted_at__isnull=True)
    assert policy_for(user=alice, target=target) is None
    with pytest.raises(RequestRefused) as e:
        elevation.request_create(requester=alice, target=target, duration_minutes=30, justification="x")
    assert e.value.code == "not_eligible"
    assert services.reviews_sweep()["applied"] == 1
    assert services.reviews_sweep()["applied"] == 0
    item = item_of(campaign, alice)
    assert item.applied_at is not None and f"exclusion #{exclusion.pk}" in item.outcome
    assert EligibilityExclusion.objects.filter(policy=policy, user=alice).count() == 1

    assert eligibility_exclusion_lift(exclusion=exclusion, actor="admin", reason="back in the team") is True
    assert eligibility_exclusion_lift(exclusion=exclusion, actor="admin") is False
    assert policy_for(user=alice, target=target) == policy
    actions = list(AuditEvent.objects.filter(object_type="eligibility_exclusion", object_id=str(exclusion.pk))
                   .order_by("id").values_list("action", "actor"))
    assert actions == [("eligibility.excluded", bob.username), ("eligibility.exclusion_lifted", "admin")]


def test_reminders_go_once_each_to_reviewers_with_something_to_decide(world):
    """GIVEN reminders 60 and 10 minutes before a 120-minute deadline, and dave's own item the only undecided one
    left for him WHEN sweeps run before, at and after each reminder time THEN each reminder is sent once,
    ReviewCampaign.reminders_sent records it, and only reviewers with an item to decide are told."""
    world["make_policy"](deadline=120, remind=(60, 10))
    now = timezone.now()
    services.reviews_sweep(now=now)
    campaign = ReviewCampaign.objects.get()
    bob, dave = world["bob"], world["dave"]
    for who in ("alice", "carol"):
        services.item_decide(item=item_of(campaign, world[who]), reviewer=bob, decision="keep", mfa=MFA)
    assert services.reminders_send(now=now + timedelta(minutes=59)) == 0
    assert services.reminders_send(now=now + timedelta(minutes=61)) == 1
    assert services.reminders_send(now=now + timedelta(minutes=62)) == 0
    campaign.refresh_from_db()
    assert campaign.reminders_sent == [60]
    reminders = Notification.objects.filter(event="review.reminder", object_id=str(campaign.pk))
    assert reminders.count() == 1
    # Only dave's own item is undecided: bob may decide it, dave may not, so only bob is reminded.
    assert {d.address for d in reminders.get().deliveries.all()} == {bob.email}
    assert services.reminders_send(now=now + timedelta(minutes=111)) == 1
    assert services.reminders_send(now=now + timedelta(minutes=115)) == 0
    campaign.refresh_from_db()
    assert campaign.reminders_sent == [60, 10]
    assert reminders.count() == 2
    assert dave.email not in {d.address for n in reminders for d in n.deliveries.all()}


def test_at_the_deadline_the_default_remove_applies_once_under_two_sweeps(world):
    """GIVEN a campaign with default remove where bob kept carol WHEN two sweeps run past the deadline THEN the
    campaign closes once (review.closed with the counts), alice and dave are removed by default and excluded,
    carol is kept and stays eligible."""
    policy = world["make_policy"](default="remove")
    now = timezone.now()
    services.reviews_sweep(now=now)
    campaign = ReviewCampaign.objects.get()
    services.item_decide(item=item_of(campaign, world["carol"]), reviewer=world["bob"], decision="keep", mfa=MFA)
    later = now + timedelta(days=1, seconds=1)
    first, second = services.reviews_sweep(now=later), services.reviews_sweep(now=later)
    assert (first["closed"], first["applied"], second["closed"], second["applied"]) == (1, 2, 0, 0)
    campaign.refresh_from_db()
    assert campaign.state == ReviewCampaign.State.CLOSED and campaign.closed_at == later
    alice, carol = item_of(campaign, world["alice"]), item_of(campaign, world["carol"])
    assert (alice.decision, alice.by_default, alice.decided_by) == ("remove", True, None)
    assert (carol.decision, carol.by_default) == ("keep", False)
    target = policy.targets.get()
    assert policy_for(user=world["alice"], target=target) is None
    assert policy_for(user=world["dave"], target=target) is None
    assert policy_for(user=world["carol"], target=target) == policy
    closed = AuditEvent.objects.get(action="review.closed", object_id=str(campaign.pk))
    assert {k: closed.data[k] for k in ("kept", "removed", "removed_by_default", "kept_by_default", "undecided")} == {
        "kept": 1, "removed": 0, "removed_by_default": 2, "kept_by_default": 0, "undecided": 0}
    assert EligibilityExclusion.objects.filter(policy=policy).count() == 2


def test_at_the_deadline_the_default_keep_excludes_nobody(world):
    """GIVEN a campaign with default keep WHEN the deadline passes undecided THEN every item is kept by default and
    everyone stays eligible."""
    policy = world["make_policy"](default="keep")
    now = timezone.now()
    services.reviews_sweep(now=now)
    services.reviews_sweep(now=now + timedelta(days=2))
    campaign = ReviewCampaign.objects.get()
    assert campaign.state == ReviewCampaign.State.CLOSED
    assert set(campaign.items.values_list("decision", "by_default")) == {("keep", True)}
    assert not EligibilityExclusion.objects.filter(policy=policy).exists()
    assert policy_for(user=world["alice"], target=policy.targets.get()) == policy


def test_a_person_without_a_jitad_account_is_excluded_when_they_appear(world, review_policy, samba_dc):
    """GIVEN a policy naming frank, who has no jitad account yet, removed by default WHEN the sweeps run THEN the
    item waits; WHEN frank's account exists THEN the next sweep links and excludes him."""
    policy = review_policy(users=["frank"])
    now = timezone.now()
    services.reviews_sweep(now=now)
    services.reviews_sweep(now=now + timedelta(days=2))
    item = ReviewItem.objects.get(username="frank")
    assert item.decision == "remove" and item.applied_at is None and item.user is None
    assert "first jitad login" in item.outcome
    frank = local_user("frank")
    assert services.reviews_sweep(now=now + timedelta(days=2, minutes=1))["applied"] == 1
    item.refresh_from_db()
    assert item.user == frank and item.applied_at is not None
    assert policy_for(user=frank, target=policy.targets.get()) is None


def test_a_managed_group_outside_the_jit_ou_is_never_written_and_the_failure_is_alerted(world, review_policy,
                                                                                        samba_dc, ldap_admin):
    """GIVEN a review whose managed group (put straight into the database, past the policy file's check) lies
    outside the JIT OU and holds alice WHEN the default removes her THEN she is excluded in jitad, but the group is
    never written: she is still in it, the item stays unapplied with the reason, one alert condition is open, and
    the next sweep tries again without a second alert."""
    from jitad import directory
    from jitad.notifications.models import AlertCondition
    from tests.elevation.helpers import ad_is_member

    alice = world["alice"]
    with directory.connect() as d:
        outside = d.ensure_group(f"Outside-{alice.username}", f"CN=Users,{samba_dc.base_dn}")
        alice_dn = d.find_user(alice.username).dn
        d.ensure_member(outside, alice_dn)
    policy = review_policy(users=[alice.username], managed_group=outside)
    now = timezone.now()
    services.reviews_sweep(now=now)
    result = services.reviews_sweep(now=now + timedelta(days=2))
    assert result["applied"] == 0
    item = ReviewItem.objects.get(campaign__policy=policy, username=alice.username)
    assert item.decision == "remove" and item.applied_at is None
    assert item.outcome.startswith("failed, retried by the sweep: DirectoryNotManaged")
    assert policy_for(user=alice, target=policy.targets.get()) is None
    assert ad_is_member(ldap_admin, outside, alice_dn)
    condition = AlertCondition.objects.get(key=f"review-removal:{item.pk}")
    assert condition.resolved_at is None
    alerts = Notification.objects.filter(event="review.removal_failed")
    assert alerts.count() == 1
    services.reviews_sweep(now=now + timedelta(days=2, minutes=1))
    assert alerts.count() == 1
    condition.refresh_from_db()
    assert condition.occurrences == 2


def test_a_sweep_while_another_runs_does_nothing(world):
    """GIVEN another process holding the review sweep's lease WHEN a sweep starts THEN it does nothing and says so;
    once the lease is released THEN the next sweep does the work."""
    from jitad.engine.services import lease_release, lease_take

    world["make_policy"]()
    assert lease_take(name="reviews-sweep", holder="other-node", seconds=60)
    assert services.reviews_sweep() is None
    assert not ReviewCampaign.objects.exists()
    lease_release(name="reviews-sweep", holder="other-node")
    assert services.reviews_sweep()["opened"] == 1
