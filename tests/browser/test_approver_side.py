"""The approver's side in a real browser: deciding from a notice's link, and the portal's approvals page.

AD accounts in the session's Samba DC sign in through the portal with their AD password and
a TOTP code; they are approvers because their AD group ("approvers") is what the policy
names. The notice is the one the request service wrote for its approvers.
"""
import re
import time
from importlib import import_module

import pytest
from django.conf import settings
from playwright.sync_api import expect

from jitad.accounts.mfa import FRESH_KEY
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Approval
from jitad.notifications.models import Notification
from tests.browser.conftest import shot
from tests.browser.flows import login_and_enrol

pytestmark = pytest.mark.django_db(transaction=True)


def _context(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="Europe/Berlin", locale="en-GB")
    context.set_default_timeout(15_000)
    return context


def _enrolled(browser, portal, sam, password, prefix):
    """``sam`` logs in once and enrols TOTP; the browser is closed. Returns (TOTP, backup codes, Django user)."""
    from django.contrib.auth import get_user_model

    context = _context(browser)
    totp, codes = login_and_enrol(context.new_page(), portal, sam, password, name_prefix=prefix)
    context.close()
    return totp, codes, get_user_model().objects.get(username__iexact=sam)


def _make_stale(page):
    """Age the browser's session past the fresh-MFA window, as the clock would (server-side, no waiting)."""
    key = next(c["value"] for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    assert session.get(FRESH_KEY)
    session[FRESH_KEY] = time.time() - settings.JITAD_MFA_FRESH_SECONDS - 60
    session.save()


def test_deciding_from_a_notice_link_signs_in_lands_on_the_request_and_steps_up(browser, portal, ad_person,
                                                                               make_target):
    """GIVEN a pending request and the notice its approvers were sent
    WHEN an approver who is not signed in opens the notice's link THEN they sign in (password, TOTP) and land
    on that request's page in the admin, and opening it decided nothing;
    WHEN their verification is older than the fresh-MFA window and they press Approve THEN a step-up page
    asks for a code and nothing is recorded (nor by a GET that names a decision, even while fresh);
    WHEN they give one THEN the approval is recorded with it."""
    target = make_target(mode="manual")
    r_sam, r_pw = ad_person("admins", prefix="r")
    _totp, _codes, requester = _enrolled(browser, portal, r_sam, r_pw, "notice-requester-")
    a_sam, a_pw = ad_person("approvers", prefix="a")
    totp, codes, approver = _enrolled(browser, portal, a_sam, a_pw, "notice-approver-")
    req = services.request_create(requester=requester, target=target, duration_minutes=30,
                                  justification="Patch the hypervisor")
    notice = Notification.objects.filter(event="request.pending", object_id=str(req.pk)).latest("pk")
    assert notice.link == f"{portal}/admin/elevation/accessrequest/{req.pk}/change/"

    context = _context(browser)
    page = context.new_page()
    page.goto(notice.link)
    expect(page).to_have_url(re.compile(r"/account/login/"))
    page.get_by_label("User name").fill(a_sam)
    page.get_by_label("Password").fill(a_pw)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/account/mfa/verify/"))
    # The enrolment used this time step's code; a code is never accepted twice, so the next one.
    page.locator("input[name=otp]").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{portal}/admin/elevation/accessrequest/{req.pk}/change/")
    expect(page.locator(".jitad-context")).to_contain_text("Before you decide")
    shot(page, "approver-01-landed-from-notice")
    req.refresh_from_db()
    assert req.state == AccessRequest.State.PENDING and not Approval.objects.filter(request=req).exists()
    # A link that tries to decide by GET (a chat button, say) only shows the request page again.
    page.goto(f"{portal}/admin/elevation/accessrequest/{req.pk}/decide/?decision=approve&comment=ok")
    expect(page).to_have_url(f"{portal}/admin/elevation/accessrequest/{req.pk}/change/")
    assert not Approval.objects.filter(request=req).exists()

    _make_stale(page)
    page.get_by_label(re.compile("Comment")).fill("Change window is open")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    shot(page, "approver-02-step-up")
    assert not Approval.objects.filter(request=req).exists()

    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.locator(".messagelist")).to_contain_text(f"Approved #{req.pk}")
    approval = Approval.objects.get(request=req)
    assert approval.approver == approver and approval.decision == Approval.Decision.APPROVE
    assert approval.comment == "Change window is open" and approval.mfa_method == "backup_code"
    context.close()


def test_the_portal_counts_and_lists_what_waits_for_the_approver_live(browser, portal, ad_person, make_target):
    """GIVEN an approver on the portal's approvals page WHEN a request arrives and another is decided
    elsewhere THEN the nav's count and the list follow without a reload, and each row links to its
    decision page."""
    target = make_target(mode="manual")
    r_sam, r_pw = ad_person("admins", prefix="r")
    _t, _c, requester = _enrolled(browser, portal, r_sam, r_pw, "live-requester-")
    a_sam, a_pw = ad_person("approvers", prefix="a")
    other_sam, other_pw = ad_person("approvers", prefix="o")
    _t2, _c2, other = _enrolled(browser, portal, other_sam, other_pw, "live-other-")
    first = services.request_create(requester=requester, target=target, duration_minutes=30, justification="first")

    context = _context(browser)
    page = context.new_page()
    login_and_enrol(page, portal, a_sam, a_pw, name_prefix="live-approver-")
    nav = page.locator("#nav-approvals")
    expect(nav).to_have_attribute("data-count", "1")
    nav.click()
    expect(page).to_have_url(f"{portal}/approvals/")
    row = page.locator(f"#approval-{first.pk}")
    expect(row).to_contain_text("first")
    expect(row.get_by_role("link", name=re.compile("Decide"))).to_have_attribute(
        "href", f"/admin/elevation/accessrequest/{first.pk}/change/")
    shot(page, "approver-03-approvals-page")

    second = services.request_create(requester=requester, target=target, duration_minutes=60, justification="second")
    expect(page.locator(f"#approval-{second.pk}")).to_contain_text("second", timeout=30_000)
    expect(page.locator("#nav-approvals")).to_have_attribute("data-count", "2", timeout=30_000)
    services.request_deny(request=first, approver=other, comment="not today")
    expect(page.locator(f"#approval-{first.pk}")).to_have_count(0, timeout=30_000)
    expect(page.locator("#nav-approvals")).to_have_attribute("data-count", "1", timeout=30_000)
    shot(page, "approver-04-approvals-live")
    context.close()


PASSKEY_APPROVE_JS = """async ({token, id}) => {
  const h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
  const bytes = s => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)),
                                     c => c.charCodeAt(0));
  const text = buf => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\\+/g, "-").replace(/\\//g, "_")
                                                                      .replace(/=+$/, "");
  const post = (path, body) => fetch(path, {method: "POST", headers: h, credentials: "omit",
                                            body: body === undefined ? undefined : JSON.stringify(body)});
  const o = await (await post("/api/v1/mfa/passkey/options")).json();
  const cred = await navigator.credentials.get({publicKey: {
    challenge: bytes(o.challenge), rpId: o.rpId, timeout: o.timeout, userVerification: o.userVerification,
    allowCredentials: o.allowCredentials.map(c => ({type: c.type, id: bytes(c.id), transports: c.transports}))}});
  const step = await (await post("/api/v1/mfa/passkey/verify", {
    id: cred.id, rawId: text(cred.rawId), type: cred.type, clientExtensionResults: {},
    response: {clientDataJSON: text(cred.response.clientDataJSON), authenticatorData: text(cred.response.authenticatorData),
               signature: text(cred.response.signature),
               userHandle: cred.response.userHandle ? text(cred.response.userHandle) : null}})).json();
  const approve = await post("/api/v1/requests/" + id + "/approve", {mfa_step: step.mfa_step, comment: "ok by passkey"});
  const again = await post("/api/v1/requests/" + id + "/deny", {mfa_step: step.mfa_step, comment: "replayed"});
  return {step: step, status: approve.status, again: again.status, againBody: await again.json()};
}"""


def test_a_passkey_only_approver_approves_through_the_api(browser, portal, ad_person, make_target):
    """GIVEN an approver whose only MFA device is a passkey (Chromium's virtual authenticator) and an API token
    WHEN their script asks for passkey options, has the authenticator sign them, and approves with the step
    THEN the approval is recorded with webauthn, and the same step is refused on a second write."""
    from jitad.accounts.models import AuthenticatorDevice, BackupCodeDevice
    from jitad.accounts.services import api_token_create

    target = make_target(mode="manual")
    r_sam, r_pw = ad_person("admins", prefix="r")
    _t, _c, requester = _enrolled(browser, portal, r_sam, r_pw, "api-passkey-requester-")
    a_sam, a_pw = ad_person("approvers", prefix="k")

    context = _context(browser)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
    login_and_enrol(page, portal, a_sam, a_pw, name_prefix="api-passkey-approver-")
    page.goto(portal + "/account/security/")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("tr", has_text="Passkey")).to_have_count(1)
    from django.contrib.auth import get_user_model

    approver = get_user_model().objects.get(username__iexact=a_sam)
    # Passkey only from here: no code to type.
    AuthenticatorDevice.objects.filter(user=approver).delete()
    BackupCodeDevice.objects.filter(user=approver).delete()
    _token, raw = api_token_create(user=approver, name="approver script")
    req = services.request_create(requester=requester, target=target, duration_minutes=30, justification="hotfix")

    result = page.evaluate(PASSKEY_APPROVE_JS, {"token": raw, "id": req.pk})
    assert result["step"]["mfa_step"].startswith("jitad_mfa_"), result
    assert result["status"] == 200, result
    assert result["again"] == 403 and result["againBody"]["code"] == "mfa_step_invalid", result
    approval = Approval.objects.get(request=req)
    assert approval.approver == approver and approval.mfa_method == "webauthn" and approval.comment == "ok by passkey"
    context.close()
