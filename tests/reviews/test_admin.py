"""The reviews in the admin: read-only for auditors; superusers lift an exclusion (audited), which restores eligibility."""
import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from jitad.audit.models import AuditEvent
from jitad.elevation.models import EligibilityExclusion
from jitad.elevation.selectors.eligibility import policy_for
from jitad.reviews.services import EligiblePerson, EligibleRead, campaign_open
from tests.elevation.builders import policy, target, user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    t = target("SRV01")
    p = policy(t, review={"every_minutes": 10080, "deadline_minutes": 1440, "reviewers": ["Leads"],
                          "default": "remove", "remind_before_minutes": [], "managed_group": ""})
    alice = user("alice", "Ops")
    campaign = campaign_open(policy=p, read=EligibleRead(people=[EligiblePerson(username="alice", via=["Ops"])],
                                                         not_found=[]))
    exclusion = EligibilityExclusion.objects.create(policy=p, user=alice, created_by="test")
    return {"target": t, "policy": p, "alice": alice, "campaign": campaign, "exclusion": exclusion}


def auditor():
    u = User.objects.create_user("audrey", is_staff=True)
    for model in ("reviewcampaign", "reviewitem", "eligibilityexclusion"):
        u.user_permissions.add(Permission.objects.get(codename=f"view_{model}"))
    return u


def test_auditors_read_every_page_and_cannot_lift(world, verified_client):
    client = verified_client(auditor())
    for name in ("reviews_reviewcampaign", "reviews_reviewitem", "elevation_eligibilityexclusion"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
    campaigns = client.get(reverse("admin:reviews_reviewcampaign_changelist")).content.decode()
    assert "0 kept, 0 removed (0 by default), 1 undecided" in campaigns
    page = client.get(reverse("admin:reviews_reviewcampaign_change", args=[world["campaign"].pk]))
    assert page.status_code == 200 and b"alice" in page.content
    changelist = client.get(reverse("admin:elevation_eligibilityexclusion_changelist")).content.decode()
    assert "lift_selected" not in changelist
    r = client.post(reverse("admin:elevation_eligibilityexclusion_changelist"),
                    {"action": "lift_selected", "_selected_action": [world["exclusion"].pk]})
    world["exclusion"].refresh_from_db()
    assert world["exclusion"].lifted_at is None and r.status_code in (200, 302)


def test_a_superuser_lifts_an_exclusion_and_the_person_is_eligible_again(world, verified_client):
    root = User.objects.create_superuser("root", password=None)
    client = verified_client(root)
    assert policy_for(user=world["alice"], target=world["target"]) is None
    r = client.post(reverse("admin:elevation_eligibilityexclusion_changelist"),
                    {"action": "lift_selected", "_selected_action": [world["exclusion"].pk]})
    assert r.status_code == 302
    world["exclusion"].refresh_from_db()
    assert world["exclusion"].lifted_by == "root" and world["exclusion"].lifted_at is not None
    assert policy_for(user=world["alice"], target=world["target"]) == world["policy"]
    assert AuditEvent.objects.filter(action="eligibility.exclusion_lifted", actor="root").count() == 1
