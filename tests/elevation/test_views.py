"""The requester's pages: eligibility, the request form, My access, cancel, release, extend.

Most tests use the database only: a manual policy creates no grant, and a grant made by
approving under the ``db`` fixture never reaches the worker (its on_commit never fires).
The last test runs the whole path through the pages against a real Samba DC and a real
Celery worker.
"""
import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Grant, Policy, Target
from tests.support.mfa import backup_codes, stale_age

from .helpers import ad_is_member, wait_state
from .builders import policy, target, user

ELIGIBLE = reverse("elevation:eligible")
ACCESS = reverse("elevation:access")
LIVE = reverse("elevation:access-live")


# -- builders ----------------------------------------------------------------------------





def new_url(t: Target) -> str:
    return f"{reverse('elevation:request-new')}?target={t.pk}"


def active_grant(requester: User, t: Target, approver: User) -> Grant:
    """A grant as the engine leaves it once applied (no DC here: the state is set directly)."""
    req = services.request_create(requester=requester, target=t, duration_minutes=30)
    services.request_approve(request=req, approver=approver)
    Grant.objects.filter(request=req).update(state=Grant.State.ACTIVE, claim_token=None, lease_until=None)
    return Grant.objects.get(request=req)


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def alice(db):
    return user("alice", "ops")


@pytest.fixture
def bob(db):
    return user("bob", "ops")


@pytest.fixture
def lead(db):
    return user("lead", "leads")


@pytest.fixture
def srv(db):
    t = target("SRV01", hostname="srv01.corp.example", description="Payroll application server")
    policy(t, name="ops-servers")
    return t


# -- eligibility page ----------------------------------------------------------------------
def test_eligible_lists_only_what_the_user_may_request(verified_client, alice, srv):
    other = target("WEB01")
    policy(other, eligible_groups=["web"], name="web")
    off = target("OFF01", enabled=False)
    policy(off, name="ops-off")
    auto = target("DEV01")
    policy(auto, approval_mode=Policy.ApprovalMode.AUTO, max_duration_minutes=90, default_duration_minutes=30, name="dev")

    page = text(verified_client(alice).get(ELIGIBLE))

    assert "SRV01" in page and "DEV01" in page
    assert "WEB01" not in page and "OFF01" not in page
    row = re.search(rf'<tr data-target-id="{srv.pk}">(.*?)</tr>', page, re.S).group(1)
    assert "srv01.corp.example" in row and "Payroll application server" in row
    assert "1 approver" in row and "4 h" in row and new_url(srv).replace("&", "&amp;") in row
    dev_row = re.search(rf'<tr data-target-id="{auto.pk}">(.*?)</tr>', page, re.S).group(1)
    assert "automatic" in dev_row and "1 h 30 min" in dev_row


def test_eligible_search_and_htmx_partial(verified_client, alice, srv):
    policy(target("WEB01", description="Intranet"), target("SQL01", hostname="db1.corp.example"), name="more")
    c = verified_client(alice)

    full = text(c.get(ELIGIBLE, {"q": "payroll"}))
    assert "<html" in full and 'id="eligible-results"' in full
    assert "SRV01" in full and "WEB01" not in full and "SQL01" not in full
    assert 'hx-trigger="input changed delay:250ms, search"' in full and 'name="q"' in full

    fragment = c.get(ELIGIBLE, {"q": "DB1.corp"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    body = text(fragment)
    assert body.lstrip().startswith('<div id="eligible-results">')
    assert "<html" not in body and "<nav aria-label=\"Main\"" not in body
    assert "SQL01" in body and "SRV01" not in body
    assert "HX-Request" in fragment["Vary"]


def test_eligible_paginates_fifty_per_page(verified_client, alice):
    policy(*[target(f"HOST{i:03d}") for i in range(60)], name="many")
    c = verified_client(alice)

    first, second = text(c.get(ELIGIBLE)), text(c.get(ELIGIBLE, {"page": 2}))

    assert first.count("data-target-id=") == 50 and second.count("data-target-id=") == 10
    assert "HOST000" in first and "HOST050" in second and "HOST050" not in first
    assert "?page=2" in first and "page 1 of 2" in first
    # a stale or junk page number never errors
    assert c.get(ELIGIBLE, {"page": 99}).status_code == 200
    assert c.get(ELIGIBLE, {"page": "x"}).status_code == 200


# -- request form ----------------------------------------------------------------------------
def test_request_form_shows_default_and_max(verified_client, alice, srv):
    page = text(verified_client(alice).get(new_url(srv)))
    duration = re.search(r'<input[^>]*name="duration_minutes"[^>]*>', page).group(0)
    assert 'value="1h"' in duration and 'list="duration-choices"' in duration
    assert "such as 4h, 90m or 1h30m. Default 1 h, at most 4 h." in page
    # the policy's usual lengths, up to its maximum, offered as suggestions
    choices = re.search(r'<datalist id="duration-choices">(.*?)</datalist>', page, re.S).group(1)
    assert re.findall(r'<option value="([^"]+)">', choices) == ["15m", "30m", "1h", "2h", "4h"]
    assert "Longest allowed</dt><dd>4 h, extensions included" in page
    assert '<label for="id_duration_minutes">' in page and '<label for="id_justification">' in page
    assert 'name="ticket"' not in page  # this policy wants no ticket
    assert 'name="otp"' not in page  # the session is fresh
    assert ">Request access</button>" in page


def test_request_over_the_maximum_is_refused_with_the_limit(verified_client, alice, srv):
    response = verified_client(alice).post(new_url(srv), {"duration_minutes": "241", "justification": "patching"})
    assert response.status_code == 400
    assert "at most 240 minutes (4 h)" in text(response)
    assert 'id="form-error"' in text(response) and 'id="id_duration_minutes_error"' in text(response)
    assert not AccessRequest.objects.exists()


def test_missing_justification_and_ticket_are_field_errors(verified_client, alice):
    t = target("PCI01")
    policy(t, require_justification=True, min_justification_length=10, require_ticket=True,
           ticket_pattern=r"CHG[0-9]{6}", name="pci")
    c = verified_client(alice)

    response = c.post(new_url(t), {"duration_minutes": "30"})
    assert response.status_code == 400
    page = text(response)
    assert 'id="id_justification_error"' in page and 'id="id_ticket_error"' in page
    assert 'aria-invalid="true"' in page

    short = text(c.post(new_url(t), {"duration_minutes": "30", "justification": "fix", "ticket": "CHG123456"}))
    assert "at least 10 characters" in short

    bad_ticket = c.post(new_url(t), {"duration_minutes": "30", "justification": "rotate the certs", "ticket": "INC1"})
    assert bad_ticket.status_code == 400
    assert re.search(r'id="id_ticket_error"><li>Ticket .*INC1.* does not match', text(bad_ticket))

    junk = c.post(new_url(t), {"duration_minutes": "lots", "justification": "rotate the certs", "ticket": "CHG123456"})
    assert junk.status_code == 400 and "is not a duration such as 4h, 90m or 1h30m" in text(junk)
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize("query", ["?target=999999", "?target=abc", "?target=", ""])
def test_unknown_target_is_404(verified_client, alice, srv, query):
    c = verified_client(alice)
    url = reverse("elevation:request-new") + query
    assert c.get(url).status_code == 404
    assert c.post(url, {"duration_minutes": "30"}).status_code == 404
    assert not AccessRequest.objects.exists()


def test_ineligible_or_disabled_target_is_404(verified_client, alice):
    foreign = target("WEB01")
    policy(foreign, eligible_groups=["web"], name="web")
    off = target("OFF01", enabled=False)
    policy(off, name="ops-off")
    c = verified_client(alice)
    for t in (foreign, off):
        assert c.get(new_url(t)).status_code == 404
        assert c.post(new_url(t), {"duration_minutes": "30"}).status_code == 404
    assert not AccessRequest.objects.exists()


def test_valid_request_is_created_and_lands_on_my_access(verified_client, alice, srv):
    c = verified_client(alice)
    response = c.post(new_url(srv), {"duration_minutes": "45", "justification": "monthly patching"})

    assert response.status_code == 302 and response.url == ACCESS
    req = AccessRequest.objects.get()
    assert (req.requester, req.target, req.duration_minutes, req.justification, req.state) == (
        alice, srv, 45, "monthly patching", AccessRequest.State.PENDING)
    page = text(c.get(ACCESS))
    assert f"Request #{req.pk} for SRV01 is waiting for 1 approver" in page
    assert f'data-request-id="{req.pk}" data-state="pending"' in page
    assert ">Cancel request<" in page


# -- My access -------------------------------------------------------------------------------
def test_my_access_shows_pending_active_and_history(verified_client, alice, lead, srv):
    grant = active_grant(alice, srv, lead)
    waiting = services.request_create(requester=alice, target=srv, duration_minutes=20)
    gone = services.request_create(requester=alice, target=srv, duration_minutes=20)
    services.request_cancel(request=gone, actor=alice)
    c = verified_client(alice)

    page = text(c.get(ACCESS))

    assert 'aria-live="polite"' in page and 'id="access-live"' in page
    row = re.search(rf'<tr data-grant-id="{grant.pk}" data-state="active".*?</tr>', page, re.S).group(0)
    iso = grant.expires_at.isoformat()
    assert f'data-expires="{iso}"' in row and f'<time data-local datetime="{iso}">' in row
    assert "Release now" in row and "Ask for more time" in row
    assert f'data-request-id="{waiting.pk}" data-state="pending"' in page
    history = page[page.index('id="h-history"'):]
    assert f'data-request-id="{gone.pk}" data-state="cancelled"' in history
    # a request waits for people: poll every 5 s (1 s only while the engine works on a grant)
    assert 'hx-trigger="every 5s"' in page


def test_live_partial_polls_slowly_when_idle_and_answers_204_when_unchanged(verified_client, alice, lead, srv):
    active_grant(alice, srv, lead)
    c = verified_client(alice)

    first = c.get(LIVE)
    body = text(first)
    assert first.status_code == 200 and body.lstrip().startswith('<div id="access-live"')
    assert "<html" not in body and 'hx-trigger="every 10s"' in body
    version = re.search(r'data-version="([^"]+)"', body).group(1)
    assert c.get(LIVE, {"v": version}).status_code == 204

    services.request_create(requester=alice, target=srv, duration_minutes=20)
    changed = c.get(LIVE, {"v": version})
    assert changed.status_code == 200 and 'hx-trigger="every 5s"' in text(changed)
    Grant.objects.filter(user=alice).update(state=Grant.State.GRANTING)
    busy = c.get(LIVE, {"v": version})
    assert busy.status_code == 200 and 'hx-trigger="every 1s"' in text(busy)


def test_an_ended_session_sends_the_whole_page_to_login(client, verified_client, alice):
    """A poll from a logged-out tab gets HX-Redirect, not a login form swapped into the region."""
    response = client.get(LIVE, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/access/")
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/account/login/?next=%2Faccess%2F"


def test_dc_outage_and_failure_show_banners_not_errors(verified_client, alice, lead, srv):
    retrying = active_grant(alice, srv, lead)
    Grant.objects.filter(pk=retrying.pk).update(state=Grant.State.GRANTING,
                                                last_error="DirectoryUnavailable: no DC answered")
    c = verified_client(alice)
    page = text(c.get(ACCESS))
    assert "Active Directory is not answering; jitad keeps retrying" in page
    assert "could not be applied" not in page

    Grant.objects.filter(pk=retrying.pk).update(state=Grant.State.GRANT_FAILED)
    page = text(c.get(LIVE))
    assert "could not be applied; the operators have been alerted" in page
    assert "DirectoryUnavailable" not in page


def test_cancel_a_pending_request(verified_client, alice, srv):
    req = services.request_create(requester=alice, target=srv, duration_minutes=20)
    c = verified_client(alice)
    url = reverse("elevation:request-cancel", args=[req.pk])

    assert c.get(url).status_code == 405
    response = c.post(url)
    assert response.status_code == 302 and response.url == ACCESS
    req.refresh_from_db()
    assert req.state == AccessRequest.State.CANCELLED

    again = c.post(url)
    assert again.status_code == 400
    assert "is cancelled, not pending" in text(again) and 'id="action-error"' in text(again)


def test_release_and_extend_my_grant(verified_client, alice, lead, srv):
    grant = active_grant(alice, srv, lead)
    c = verified_client(alice)
    extend = reverse("elevation:grant-extend", args=[grant.pk])

    form = text(c.get(extend))
    assert ">More time" in form and "0 of 2 used" in form
    assert "4 h in all: at most 3 h 30 min more" in form  # a 30 min grant under a 4 h policy
    too_long = c.post(extend, {"duration_minutes": "999", "justification": "more"})
    assert too_long.status_code == 400 and "at most 240 minutes (4 h)" in text(too_long)
    past_total = c.post(extend, {"duration_minutes": "3h31m", "justification": "more"})
    assert past_total.status_code == 400
    assert f"Grant #{grant.pk} can get at most 3 h 30 min more" in text(past_total)
    assert c.post(extend, {"duration_minutes": "30", "justification": "still patching"}).url == ACCESS
    ext = AccessRequest.objects.get(kind=AccessRequest.Kind.EXTENSION)
    assert (ext.extends_id, ext.duration_minutes, ext.state) == (grant.pk, 30, AccessRequest.State.PENDING)
    assert "extension #%d waiting for approval" % ext.pk in text(c.get(ACCESS))

    release = reverse("elevation:grant-release", args=[grant.pk])
    assert c.post(release).url == ACCESS
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKING and grant.revoke_reason == Grant.RevokeReason.RELEASED
    twice = c.post(release)
    assert twice.status_code == 400 and "already revoking" in text(twice)
    gone = c.post(extend, {"duration_minutes": "30", "justification": "one more"})
    assert gone.status_code == 409 and "cannot be extended" in text(gone) and 'name="duration_minutes"' not in text(gone)


def test_someone_elses_request_and_grant_are_404(verified_client, alice, bob, lead, srv):
    bobs_request = services.request_create(requester=bob, target=srv, duration_minutes=20)
    bobs_grant = active_grant(bob, srv, lead)
    c = verified_client(alice)

    assert c.post(reverse("elevation:request-cancel", args=[bobs_request.pk])).status_code == 404
    assert c.post(reverse("elevation:grant-release", args=[bobs_grant.pk])).status_code == 404
    extend = reverse("elevation:grant-extend", args=[bobs_grant.pk])
    assert c.get(extend).status_code == 404
    assert c.post(extend, {"duration_minutes": "30"}).status_code == 404
    assert c.post(reverse("elevation:request-cancel", args=[424242])).status_code == 404

    bobs_request.refresh_from_db()
    bobs_grant.refresh_from_db()
    assert bobs_request.state == AccessRequest.State.PENDING
    assert bobs_grant.state == Grant.State.ACTIVE and bobs_grant.revoke_requested_at is None
    assert not AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION).exists()
    assert "SRV01" not in text(c.get(ACCESS))  # bob's rows are not on alice's page


def test_durations_typed_in_hours_and_minutes(verified_client, alice, lead, srv):
    """GIVEN the request and extension forms WHEN alice types 1h30m and 1h THEN the
    request and the extension record 90 and 60 minutes."""
    c = verified_client(alice)
    assert c.post(new_url(srv), {"duration_minutes": "1h30m", "justification": "patching"}).url == ACCESS
    assert AccessRequest.objects.get(kind=AccessRequest.Kind.NEW).duration_minutes == 90
    grant = active_grant(alice, srv, lead)
    extend = reverse("elevation:grant-extend", args=[grant.pk])
    assert c.post(extend, {"duration_minutes": "1h", "justification": "still patching"}).url == ACCESS
    assert AccessRequest.objects.get(kind=AccessRequest.Kind.EXTENSION).duration_minutes == 60


def _extend_row(page: str, grant: Grant) -> str:
    return re.search(rf'<tr data-grant-id="{grant.pk}".*?</tr>', page, re.S).group(0)


def test_no_more_time_is_offered_when_the_policy_allows_no_extension(verified_client, alice, lead):
    """GIVEN a policy that allows no extensions WHEN alice looks at her grant THEN "Ask for
    more time" is not offered; forcing the page answers 409 with the reason and no form."""
    t = target("SRV09")
    policy(t, name="no-ext", max_extensions=0)
    grant = active_grant(alice, t, lead)
    c = verified_client(alice)

    row = _extend_row(text(c.get(ACCESS)), grant)
    assert "Release now" in row and "Ask for more time" not in row
    extend = reverse("elevation:grant-extend", args=[grant.pk])
    for response in (c.get(extend), c.post(extend, {"duration_minutes": "30", "justification": "more"})):
        assert response.status_code == 409
        assert "Policy no-ext allows no extensions" in text(response) and 'name="duration_minutes"' not in text(response)
    assert not AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION).exists()


def test_no_more_time_is_offered_once_a_grant_lasts_the_policys_longest(verified_client, alice, lead):
    """GIVEN a grant as long as its policy's maximum (4 h) WHEN alice looks at it THEN no
    more time is offered, and forcing it answers 409: extensions never carry a grant past
    the policy's longest grant."""
    t = target("SRV08")
    policy(t, name="four-hours", max_duration_minutes=240)
    req = services.request_create(requester=alice, target=t, duration_minutes="4h")
    services.request_approve(request=req, approver=lead)
    grant = Grant.objects.get(request=req)
    Grant.objects.filter(pk=grant.pk).update(state=Grant.State.ACTIVE, claim_token=None, lease_until=None)
    c = verified_client(alice)

    assert "Ask for more time" not in _extend_row(text(c.get(ACCESS)), grant)
    response = c.get(reverse("elevation:grant-extend", args=[grant.pk]))
    assert response.status_code == 409
    assert "lets a grant last at most 4 h in all" in text(response)


def test_pages_show_one_timestamp_format_with_its_zone(settings, verified_client, alice, lead, srv):
    """GIVEN jitad set to Europe/Berlin WHEN alice opens My access and the extend page, and
    the approver the grant in the admin THEN each shows the expiry as 2026-12-05 15:30 CET."""
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = "Europe/Berlin"
    grant = active_grant(alice, srv, lead)
    local = grant.expires_at.astimezone(ZoneInfo("Europe/Berlin"))
    shown = local.strftime("%Y-%m-%d %H:%M ") + local.tzname()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T", shown)

    c = verified_client(alice)
    assert f'<time data-local datetime="{grant.expires_at.isoformat()}">{shown}</time>' in text(c.get(ACCESS))
    assert shown in text(c.get(reverse("elevation:grant-extend", args=[grant.pk])))
    admin_page = text(verified_client(lead).get(reverse("admin:elevation_grant_change", args=[grant.pk])))
    assert shown in admin_page


# -- MFA freshness ---------------------------------------------------------------------------
def test_stale_session_needs_a_code_on_every_form(verified_client, alice, lead, srv):
    """GIVEN a session verified longer ago than the fresh window
    WHEN alice posts a request without a code THEN she gets the step-up page (403) and
    nothing is created; WHEN she posts with a backup code THEN the request is made."""
    grant = active_grant(alice, srv, lead)
    pending = services.request_create(requester=alice, target=srv, duration_minutes=20)
    codes = backup_codes(alice, 3)
    c = verified_client(alice, age_seconds=stale_age())

    form = text(c.get(new_url(srv)))
    assert re.search(r'<label for="request-otp">Current code</label>\s*<input type="text" id="request-otp" name="otp" '
                     r'autocomplete="one-time-code"', form)
    access = text(c.get(ACCESS))
    assert f'id="cancel-otp-{pending.pk}"' in access and f'id="release-otp-{grant.pk}"' in access
    assert 'id="extend-otp"' in text(c.get(reverse("elevation:grant-extend", args=[grant.pk])))

    before = AccessRequest.objects.count()
    refused = c.post(new_url(srv), {"duration_minutes": "30", "justification": "stale"})
    assert refused.status_code == 403 and "Confirm it" in text(refused)
    assert AccessRequest.objects.count() == before

    done = c.post(new_url(srv), {"duration_minutes": "30", "justification": "stale", "otp": codes[0]})
    assert done.status_code == 302 and done.url == ACCESS
    assert AccessRequest.objects.filter(justification="stale", requester=alice).count() == 1
    assert 'name="otp"' not in text(c.get(new_url(srv)))  # fresh again


# -- end to end: real DC, real worker ----------------------------------------------------------
def test_request_through_the_pages_goes_active_in_ad_then_release(live, verified_client, make_user, make_target,
                                                                  ldap_admin):
    """GIVEN an auto-approve policy WHEN alice requests through the form THEN, with no
    further click, the worker adds her to the AD group and the live partial shows the
    grant active with its expiry; WHEN she presses Release now THEN she leaves the group."""
    t = make_target(mode="auto")
    alice = make_user("alice", groups=["admins"])
    c = verified_client(alice)
    assert t.name in text(c.get(ELIGIBLE, {"q": t.name}))

    response = c.post(new_url(t), {"duration_minutes": "30", "justification": "end-to-end"})
    assert response.status_code == 302 and response.url == ACCESS
    req = AccessRequest.objects.get(requester=alice)
    assert req.state == AccessRequest.State.APPROVED

    grant = wait_state(req.grant.id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, t.group_dn, grant.user_dn)
    live_part = text(c.get(LIVE))
    row = re.search(rf'<tr data-grant-id="{grant.pk}" data-state="active".*?</tr>', live_part, re.S).group(0)
    assert f'data-expires="{grant.expires_at.isoformat()}"' in row and "Release now" in row

    assert c.post(reverse("elevation:grant-release", args=[grant.pk])).url == ACCESS
    grant = wait_state(grant.id, Grant.State.REVOKED)
    assert grant.revoke_reason == Grant.RevokeReason.RELEASED
    assert not ad_is_member(ldap_admin, t.group_dn, grant.user_dn)
    assert f'data-grant-id="{grant.pk}" data-state="revoked"' in text(c.get(LIVE))


def test_out_of_range_numbers_are_404_not_500(verified_client, alice, srv):
    c = verified_client(alice)
    huge = 10**30
    assert c.get(f"{reverse('elevation:request-new')}?target={huge}").status_code == 404
    assert c.post(reverse("elevation:request-cancel", args=[huge])).status_code == 404
    assert c.post(reverse("elevation:grant-release", args=[huge])).status_code == 404
    assert c.get(reverse("elevation:grant-extend", args=[huge])).status_code == 404
    assert c.get(ELIGIBLE, {"page": huge, "q": "%_\\'"}).status_code == 200
