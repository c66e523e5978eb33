"""A reviewer's journey in a real browser: the Reviews link, the open review, and a removal swapped in by htmx.

GIVEN a review opened from the real DC's groups, and a reviewer who signs in with their AD password (their AD
reviewer group mirrored at login) WHEN they open Reviews and remove a person with a comment THEN the row shows
the removal without a reload, the decision is recorded as theirs, and the page raised no Content-Security-Policy violation.
"""
import re
import uuid

import pytest
from playwright.sync_api import expect

from jitad.elevation.models import EligibilityExclusion
from jitad.reviews import services
from jitad.reviews.models import ReviewCampaign
from tests.browser.conftest import shot
from tests.browser.flows import login_and_enrol

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reviewer_removes_a_person(page, portal, ad_person, make_target):
    tag = uuid.uuid4().hex[:6]
    eligible, reviewers = f"Elig-{tag}", f"Reviewers-{tag}"
    person, _ = ad_person(eligible, prefix="e")
    sam, password = ad_person(reviewers, prefix="r")
    target = make_target(mode="manual", eligible_groups=(eligible,))
    policy = target.policies.get()
    policy.review = {"every_minutes": 10080, "deadline_minutes": 1440, "reviewers": [reviewers], "default": "remove",
                     "remind_before_minutes": [], "managed_group": ""}
    policy.save(update_fields=["review"])
    services.reviews_sweep()
    campaign = ReviewCampaign.objects.get(policy=policy)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    login_and_enrol(page, portal, sam, password, name_prefix="reviews-")
    page.get_by_role("link", name="Reviews").click()
    expect(page).to_have_url(re.compile(r"/reviews/$"))
    row = page.locator(f"#review-{campaign.pk} tr", has_text=person)
    expect(row).to_have_count(1)
    shot(page, "reviews-01-open")
    row.get_by_label(re.compile("Comment")).fill("moved to another team")
    row.get_by_role("button", name=re.compile("Remove")).click()
    expect(page.locator("tr[data-decision='remove']", has_text=person)).to_have_count(1)
    expect(page.locator("tr[data-decision='remove']", has_text=person)).to_contain_text("moved to another team")
    shot(page, "reviews-02-removed")
    assert page.url.endswith("/reviews/")  # swapped in place, no navigation
    # The person has never signed in to jitad: the exclusion waits for their account.
    assert not EligibilityExclusion.objects.filter(policy=policy).exists()
    item = campaign.items.get(username=person.lower())
    assert (item.decision, item.decided_by.username, item.comment) == ("remove", sam.lower(), "moved to another team")
    assert violations == []
