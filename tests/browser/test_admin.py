"""Approvers in a real browser: the OTP admin, the queue, N-of-M, and self-approval refused.

AD accounts in the session's Samba DC log in through the portal with their AD password,
enrol TOTP from the page, and become approvers because their AD group ("approvers") is
what the policy names; nobody edits Django permissions. Approving in the admin makes the
real worker add the requester to the target's AD group, read back over the test's own
LDAP connection.
"""
import re

import pytest
from playwright.sync_api import expect

from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Grant
from tests.browser.conftest import shot
from tests.browser.flows import login_and_enrol
from tests.elevation.helpers import ad_is_member, ad_user_dn, wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def _session(browser, portal, sam, password, prefix):
    """A new browser context for ``sam``, logged in through the portal with a fresh TOTP."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="Europe/Berlin", locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    _totp, codes = login_and_enrol(page, portal, sam, password, name_prefix=prefix)
    return page, codes


def _approver_session(browser, portal, sam, password, prefix):
    """``_session``, then the admin, which lets the approver in."""
    page, codes = _session(browser, portal, sam, password, prefix)
    page.goto(portal + "/admin/")
    expect(page.get_by_role("link", name="Access requests").first).to_be_visible()
    return page, codes


def _django_user(sam):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username__iexact=sam)


def _requester(ad_person, browser, portal):
    """An eligible AD user who has logged in once (so jitad knows their account)."""
    sam, password = ad_person("admins", prefix="r")
    page, _codes = _session(browser, portal, sam, password, "requester-")
    page.context.close()
    return _django_user(sam), sam


def test_two_approvers_from_the_queue_then_active_in_ad(browser, portal, ad_person, make_target, ldap_admin,
                                                        samba_dc):
    """GIVEN a policy needing 2 approvals from the AD group 'approvers' WHEN the first approver
    approves from the changelist THEN the request waits ('1 of 2') and the same person cannot
    approve again; WHEN a second, different approver approves on the request page THEN the
    worker makes the grant active and AD has the membership."""
    target = make_target(mode="manual", approvals=2)
    requester, requester_sam = _requester(ad_person, browser, portal)
    req = services.request_create(requester=requester, target=target, duration_minutes=45,
                                  justification="Rotate the TLS certificate on the web tier")
    first_sam, first_pw = ad_person("approvers", prefix="a")
    second_sam, second_pw = ad_person("approvers", prefix="b")

    first, _codes = _approver_session(browser, portal, first_sam, first_pw, "approver-")
    first.get_by_role("link", name="Access requests").first.click()
    row = first.locator("#result_list tbody tr", has_text=f"#{req.pk}")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Rotate the TLS certificate")
    expect(row).to_contain_text("0 of 2")
    shot(first, "admin-01-queue")
    row.locator("input.action-select").check()
    first.locator("select[name=action]").select_option("approve_selected")
    first.get_by_role("button", name="Go").click()
    expect(first.get_by_text("You are about to")).to_be_visible()
    first.get_by_label(re.compile("Comment")).fill("Fine, change window is open")
    shot(first, "admin-02-confirm-approve")
    first.get_by_role("button", name="Approve").click()
    expect(first.locator(".messagelist")).to_contain_text(f"Approved #{req.pk}")
    req.refresh_from_db()
    assert req.state == AccessRequest.State.PENDING and not Grant.objects.filter(request=req).exists()

    # Not waiting for this approver any more; on the request page, no second vote.
    expect(first.locator("#result_list tbody tr", has_text=f"#{req.pk}")).to_have_count(0)
    first.goto(f"{portal}/admin/elevation/accessrequest/{req.pk}/change/")
    expect(first.locator(".jitad-context")).to_contain_text("1 of 2")
    expect(first.get_by_role("button", name="Approve")).to_have_count(0)
    first.context.close()

    second, _codes = _approver_session(browser, portal, second_sam, second_pw, "approver2-")
    second.goto(f"{portal}/admin/elevation/accessrequest/{req.pk}/change/")
    expect(second.locator(".jitad-context")).to_contain_text("Before you decide")
    shot(second, "admin-03-request-page")
    second.get_by_label(re.compile("Comment")).fill("Second pair of eyes: ok")
    second.get_by_role("button", name="Approve").click()
    expect(second.locator(".messagelist")).to_contain_text(f"Approved #{req.pk}")

    grant = wait_state(Grant.objects.get(request=req).id, Grant.State.ACTIVE)
    assert ad_is_member(ldap_admin, target.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, requester_sam))
    second.goto(f"{portal}/admin/elevation/grant/")
    expect(second.locator("#result_list tbody tr", has_text=f"#{grant.pk}")).to_contain_text("Active")
    shot(second, "admin-04-grants-now")

    # Revoke from the grant's page: gone from AD.
    second.locator("#result_list tbody tr", has_text=f"#{grant.pk}").get_by_role("link", name=f"#{grant.pk}").click()
    second.get_by_label(re.compile("Reason")).fill("Work finished early")
    second.get_by_role("button", name="Revoke now").click()
    expect(second.locator(".messagelist")).to_contain_text(f"Revoking #{grant.pk}")
    wait_state(grant.id, Grant.State.REVOKED)
    assert not ad_is_member(ldap_admin, target.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, requester_sam))
    second.context.close()


def test_self_approval_refused_in_the_admin_and_the_api(browser, portal, ad_person, make_target):
    """GIVEN an approver who is also eligible WHEN they request access and try to approve it in
    the admin (action and request page) and through the API THEN every path refuses."""
    target = make_target(mode="manual")
    sam, password = ad_person("admins", "approvers", prefix="s")
    page, codes = _approver_session(browser, portal, sam, password, "self-")
    req = services.request_create(requester=_django_user(sam), target=target, justification="my own")

    page.goto(f"{portal}/admin/elevation/accessrequest/?queue=all")
    row = page.locator("#result_list tbody tr", has_text=f"#{req.pk}")
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("approve_selected")
    page.get_by_role("button", name="Go").click()
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".messagelist")).to_contain_text("Nobody may decide their own request")
    shot(page, "admin-05-self-approval-refused")

    page.goto(f"{portal}/admin/elevation/accessrequest/{req.pk}/change/")
    expect(page.locator(".jitad-context")).to_contain_text("This is your own request")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    answer = page.request.post(f"{portal}/api/v1/requests/{req.pk}/approve", data={"otp": codes[0]},
                               headers={"X-CSRFToken": csrf, "Referer": portal + "/"})
    assert answer.status == 403, answer.text()
    assert answer.json()["code"] == "self_approval"
    req.refresh_from_db()
    assert req.state == AccessRequest.State.PENDING
    page.context.close()
