"""The reviewers' portal page and REST API: who sees which review, keep and remove with a fresh MFA step, never
about oneself, and eligibility answers (search, lists) that honour an exclusion in a bounded number of queries."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jitad.audit.models import AuditEvent
from jitad.elevation.models import EligibilityExclusion
from jitad.elevation.selectors.eligibility import eligibility_search, eligible_targets, policies_for_targets
from jitad.reviews.models import ReviewItem
from jitad.reviews.services import EligiblePerson, EligibleRead, campaign_open
from tests.elevation.builders import policy, target, user
from tests.elevation.test_api import Caller, error
from tests.support.mfa import stale_age

pytestmark = pytest.mark.django_db

REVIEWS = "/api/v1/reviews"


@pytest.fixture
def world():
    """SRV01 under ops-servers (Ops may request), reviewed by Leads; carol is a lead and in Ops herself."""
    t = target("SRV01")
    p = policy(t, review={"every_minutes": 10080, "deadline_minutes": 1440, "reviewers": ["Leads"],
                          "default": "remove", "remind_before_minutes": [], "managed_group": ""})
    people = {n: user(n, *groups) for n, groups in (("alice", ["Ops"]), ("bob", ["leads"]), ("carol", ["Leads", "Ops"]),
                                                     ("eve", []))}
    read = EligibleRead(people=[EligiblePerson(username=n, via=["Ops"]) for n in ("alice", "carol")], not_found=[])
    campaign = campaign_open(policy=p, read=read)
    return {"target": t, "policy": p, "campaign": campaign, **people}


def item(world, name) -> ReviewItem:
    return world["campaign"].items.get(username=name)


def test_the_page_lists_open_reviews_with_buttons_only_where_the_reviewer_may_decide(world, verified_client):
    client = verified_client(world["carol"])
    page = client.get(reverse("reviews:page"))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="review-{world["campaign"].pk}"' in html
    assert f'id="remove-{item(world, "alice").pk}"' in html
    assert f'id="remove-{item(world, "carol").pk}"' not in html  # her own: not hers to decide
    assert "not yours to decide" in html
    assert "<script" not in html.split("<main", 1)[-1].split("</main>", 1)[0]  # no inline script in the page body
    assert 'href="/reviews/"' in html  # the nav link for reviewers


def test_someone_who_reviews_nothing_sees_no_review_and_no_link(world, verified_client):
    client = verified_client(world["alice"])
    html = client.get(reverse("reviews:page")).content.decode()
    assert 'id="no-reviews"' in html and 'href="/reviews/"' not in html
    r = client.post(reverse("reviews:item-decide", args=[item(world, "carol").pk]), {"decision": "remove"})
    assert r.status_code == 404


def test_a_portal_removal_with_htmx_returns_the_row_and_excludes(world, verified_client):
    client = verified_client(world["bob"])
    pk = item(world, "alice").pk
    r = client.post(reverse("reviews:item-decide", args=[pk]), {"decision": "remove", "comment": "left"},
                    HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    assert f'id="item-{pk}"' in r.content.decode() and 'data-decision="remove"' in r.content.decode()
    assert EligibilityExclusion.objects.filter(policy=world["policy"], user=world["alice"]).exists()
    event = AuditEvent.objects.get(action="review.item_decided", object_id=str(pk))
    assert event.data["mfa_method"] == "totp"
    again = client.post(reverse("reviews:item-decide", args=[pk]), {"decision": "keep"}, HTTP_HX_REQUEST="true")
    assert again.status_code == 400 and "already decided" in again.content.decode()


def test_a_stale_session_must_give_a_code_before_deciding(world, verified_client):
    client = verified_client(world["bob"], age_seconds=stale_age())
    r = client.post(reverse("reviews:item-decide", args=[item(world, "alice").pk]), {"decision": "remove"})
    assert r.status_code == 403
    assert item(world, "alice").decision == ""


def test_the_api_lists_my_reviews_and_decides_with_otp(world):
    bob, carol, eve = Caller(world["bob"]), Caller(world["carol"]), Caller(world["eve"])
    body = carol.get(REVIEWS).json()
    assert [c["id"] for c in body] == [world["campaign"].pk]
    flags = {i["username"]: i["can_decide"] for i in body[0]["items"]}
    assert flags == {"alice": True, "carol": False}
    assert body[0]["default"] == "remove" and body[0]["waiting"] == 1
    assert eve.get(REVIEWS).json() == []

    pk = item(world, "carol").pk
    error(bob.post(f"{REVIEWS}/items/{pk}/decide", {"decision": "keep"}, otp=False), 403, "otp_required")
    error(carol.post(f"{REVIEWS}/items/{pk}/decide", {"decision": "keep"}), 403, "self_review")
    error(eve.post(f"{REVIEWS}/items/{pk}/decide", {"decision": "keep"}), 404, "not_found")
    error(bob.post(f"{REVIEWS}/items/{pk}/decide", {"decision": "perhaps"}), 400, "invalid")
    r = bob.post(f"{REVIEWS}/items/{pk}/decide", {"decision": "keep", "comment": "still on call"})
    assert r.status_code == 200, r.content
    assert (r.json()["decision"], r.json()["decided_by"], r.json()["can_decide"]) == ("keep", "bob", False)
    assert item(world, "carol").mfa_method == "backup_code"
    error(bob.post(f"{REVIEWS}/items/{pk}/decide", {"decision": "remove"}), 409, "already_decided")


def test_eligibility_answers_honour_an_exclusion_in_the_same_number_of_queries(world):
    """GIVEN alice eligible for SRV01 (ops-servers) and SRV02 (a second policy) WHEN ops-servers is taken from her
    THEN search, lists and per-target answers leave SRV01 out, keep SRV02, and ask no more queries than before."""
    alice = world["alice"]
    srv02 = target("SRV02")
    policy(srv02, name="ops-more", priority=200)
    ids = {world["target"].pk, srv02.pk}

    def answers():
        with CaptureQueriesContext(connection) as q:
            page = eligibility_search(user=alice, limit=50)
            best = policies_for_targets(user=alice, target_ids=ids)
        return [t.name for t, _p in page.items], {k: v.name for k, v in best.items()}, len(q)

    names, best, before = answers()
    assert names == ["SRV01", "SRV02"] and best[world["target"].pk] == "ops-servers"
    EligibilityExclusion.objects.create(policy=world["policy"], user=alice, created_by="test")
    names, best, after = answers()
    assert names == ["SRV02"] and world["target"].pk not in best
    assert after == before
    assert [t.name for t, _p in eligible_targets(user=alice)] == ["SRV02"]
