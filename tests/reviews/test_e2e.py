"""Reviews end to end: people read from the real Samba DC, the sweep run by the real Celery worker, removals
taken out of a review-managed group in AD."""
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_verify
from jitad.elevation import services as elevation
from jitad.elevation.errors import RequestRefused
from jitad.elevation.models import AccessRequest, EligibilityExclusion
from jitad.engine import queue
from jitad.reviews.models import ReviewCampaign, ReviewItem
from tests.elevation.helpers import ad_is_member, ad_user_dn
from tests.support.waiting import wait_for


def sweep_by_worker(predicate, message: str):
    """Ask the worker for a review sweep until ``predicate`` holds (its beat may have run one meanwhile)."""
    queue.enqueue("jitad.reviews.sweep")
    try:
        return wait_for(predicate, timeout=10, message=message)
    except AssertionError:  # a sweep already running (the lease) skipped ours: ask once more
        queue.enqueue("jitad.reviews.sweep")
        return wait_for(predicate, timeout=30, message=message)


@pytest.fixture
def estate(live, make_user, make_target, jit_ou):
    """alice eligible through an AD group (and a member of a review-managed group under the JIT OU); bob reviews."""
    alice = make_user("alice")
    bob = make_user("bob", groups=["Reviewers"])
    name = f"Elig-{uuid.uuid4().hex[:6]}"
    with directory.connect() as d:
        group_dn = d.ensure_group(name, jit_ou)
        managed_dn = d.ensure_group(f"Reviewed-{uuid.uuid4().hex[:6]}", jit_ou)
        alice_dn = d.find_user(alice.username).dn
        d.ensure_member(group_dn, alice_dn)
        d.ensure_member(managed_dn, alice_dn)
    alice.groups.add(Group.objects.get_or_create(name=name)[0])

    def reviewed_target(*, default, managed=""):
        target = make_target(mode="manual", eligible_groups=(name,), approver_groups=("approvers",))
        policy = target.policies.get()
        policy.review = {"every_minutes": 7 * 24 * 60, "deadline_minutes": 24 * 60, "reviewers": ["Reviewers"],
                         "default": default, "remind_before_minutes": [60], "managed_group": managed}
        policy.save(update_fields=["review"])
        return target, policy

    return {"alice": alice, "bob": bob, "alice_dn": alice_dn, "managed_dn": managed_dn,
            "reviewed_target": reviewed_target}


def test_nobody_answers_and_the_default_removes_from_jitad_and_the_managed_group(estate, ldap_admin, samba_dc):
    """GIVEN a policy reviewed with default remove and a review-managed group under the JIT OU holding alice
    WHEN the worker's sweep runs THEN a review opens with alice, read from the AD group;
    WHEN nobody answers and the deadline passes (moved back in the database) and the worker sweeps again
    THEN alice is removed by default, excluded (request_create refuses her: not_eligible), and gone from the
    managed group in AD; the audit chain verifies."""
    target, policy = estate["reviewed_target"](default="remove", managed=estate["managed_dn"])
    alice = estate["alice"]
    campaign = sweep_by_worker(lambda: ReviewCampaign.objects.filter(policy=policy).first(), "the review to open")
    item = ReviewItem.objects.get(campaign=campaign)
    assert item.username == alice.username.lower() and item.user == alice
    assert item.user_dn.lower() == estate["alice_dn"].lower()
    assert ad_is_member(ldap_admin, estate["managed_dn"], ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))

    ReviewCampaign.objects.filter(pk=campaign.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    item = sweep_by_worker(lambda: ReviewItem.objects.filter(pk=item.pk, applied_at__isnull=False).first(),
                           "the default removal to be applied")
    campaign.refresh_from_db()
    assert campaign.state == ReviewCampaign.State.CLOSED
    assert (item.decision, item.by_default) == ("remove", True)
    assert EligibilityExclusion.objects.filter(policy=policy, user=alice, lifted_at__isnull=True).exists()
    with pytest.raises(RequestRefused) as e:
        elevation.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    assert e.value.code == "not_eligible"
    assert not ad_is_member(ldap_admin, estate["managed_dn"], estate["alice_dn"])
    assert audit_verify() == []


def test_nobody_answers_and_the_default_keeps(estate):
    """GIVEN a policy reviewed with default keep WHEN the review opens through the worker, nobody answers and the
    deadline passes THEN alice is kept by default, nothing excludes her, and she may still request."""
    target, policy = estate["reviewed_target"](default="keep")
    alice = estate["alice"]
    campaign = sweep_by_worker(lambda: ReviewCampaign.objects.filter(policy=policy).first(), "the review to open")
    ReviewCampaign.objects.filter(pk=campaign.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    sweep_by_worker(lambda: ReviewCampaign.objects.filter(pk=campaign.pk, state="closed").first(),
                    "the review to close")
    item = ReviewItem.objects.get(campaign=campaign)
    assert (item.decision, item.by_default, item.applied_at) == ("keep", True, None)
    assert not EligibilityExclusion.objects.filter(policy=policy).exists()
    req = elevation.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    assert req.state == AccessRequest.State.PENDING
