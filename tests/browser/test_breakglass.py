"""Break-glass in a real browser: a responder checks out a sealed AD account, two approvers let it open.

A sealed account is enrolled through the service and sealed by the real worker against
the session's Samba DC. The people are AD accounts in AD groups ("bg-responders",
"bg-approvers"); they log in through the portal with their AD password and a TOTP they
enrol from the page, and become responder and approvers only because the sealed account
names those AD groups. Nobody edits Django groups or permissions.

What the browser proves: asking needs a current code typed into the request (a wrong one
creates nothing); the responder's page turns "open" by itself once two approvers approve
in the OTP admin; the password is shown once, by a page no browser or proxy may store,
and it binds against the DC; reloading, going back and forth or revisiting never shows it
again; runbook ticks are swapped in place and audited; checking in rotates the password in
AD (the one shown stops working); the review is filed by the holder and closed by an
approver in the admin.
"""
import re
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from jitad.accounts.devices import AuthenticatorDevice, BackupCodeDevice
from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.breakglass.models import Checkout, CheckoutApproval, Review, RunbookTick, SealedAccount
from jitad.breakglass.services import account_enrol
from tests.breakglass.helpers import ad_bind, stored_password, wait_account, wait_checkout
from tests.browser.conftest import shot
from tests.browser.flows import login_and_enrol
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RESPONDERS, APPROVERS = "bg-responders", "bg-approvers"
RUNBOOK_TITLE = "Domain controller outage"  # runbooks/dc-outage.md; applies to bg-da-*
AccountState, CheckoutState = SealedAccount.State, Checkout.State


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture
def sealed_account(jit_ou, live):
    """``sealed_account()``: an AD account ``bg-da-<hex>`` enrolled through the service and sealed by the worker."""

    def make(**fields):
        sam = f"bg-da-{uuid.uuid4().hex[:8]}"
        with directory.connect() as d:
            d.ensure_user(sam, jit_ou, password="Cr-" + uuid.uuid4().hex)
        account = SealedAccount(name=sam, responder_groups=[RESPONDERS], approver_groups=[APPROVERS],
                                disable_when_sealed=True, **fields)
        account = account_enrol(account=account, actor="tester")
        return wait_account(account.pk, AccountState.SEALED)

    return make


def _context_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, timezone_id="Europe/Berlin", locale="en-GB")
    context.set_default_timeout(15_000)
    return context.new_page()


def _approver_admin(browser, portal, sam, password, prefix):
    """A new browser context for an approver: the portal's login and TOTP enrolment, then the OTP admin."""
    page = _context_page(browser)
    login_and_enrol(page, portal, sam, password, name_prefix=prefix)
    page.goto(portal + "/admin/")
    expect(page.get_by_role("link", name="Checkouts")).to_be_visible()
    return page


def _label(state: str):
    """A state badge's text: the model's label ("Sealed", "Open")."""
    return re.compile(rf"^\s*{state}\s*$", re.I)


def _current_step() -> int:
    return int(time.time() // 30)  # django-otp's TOTP: t0 = 0, step = 30 s


def _next_totp(totp, sam) -> str:
    """The current code of ``sam``'s app once it is one django-otp takes: a step not used yet, no throttle.

    django-otp refuses a code of a step already used (the enrolment's) and locks a device
    for a second after a wrong code; a person would wait just the same.
    """
    def ready():
        device = AuthenticatorDevice.objects.get(user__username__iexact=sam, confirmed=True)
        return (device.last_t is None or _current_step() > device.last_t) and device.verify_is_allowed()[0]

    wait_for(ready, timeout=40, message="a TOTP step not used yet")
    return totp.now()


def _backup_ready(sam) -> None:
    """Wait out django-otp's lock on the backup codes after a wrong one (a second)."""
    wait_for(lambda: all(d.verify_is_allowed()[0] for d in BackupCodeDevice.objects.filter(user__username__iexact=sam)),
             timeout=10, message="the backup codes to be usable again")


def _wrong_code(totp) -> str:
    """Six digits that are none of the codes django-otp would accept now (it tolerates a step either side)."""
    now = time.time()
    valid = {totp.at(now + k * 30) for k in range(-3, 4)}
    return next(c for c in (f"{(int(totp.now()) + d) % 10**6:06d}" for d in range(1, 100)) if c not in valid)


def _history(page, go, *, kept=False) -> None:
    """Back or forward in the history. An answer to a POST that no-store kept out of every cache cannot be shown
    again: Chromium fails the navigation with ERR_CACHE_MISS (its "Confirm Form Resubmission" page)."""
    if kept:
        response = go()
        assert response is not None and response.request.method == "GET" and response.ok
        return
    with pytest.raises(PlaywrightError, match="ERR_CACHE_MISS"):
        go()
    expect(page.locator("body")).to_contain_text("ERR_CACHE_MISS")  # Chromium's own error page, loaded


def _open_in_admin(page, portal, model, row_text):
    """From the admin index, Break-glass › ``model``, then the row with ``row_text``."""
    page.goto(portal + "/admin/")
    page.get_by_role("link", name=model).click()
    row = page.locator("#result_list tbody tr", has_text=row_text)
    expect(row).to_have_count(1)
    return row


# -- the tests -----------------------------------------------------------------------------------
def test_checkout_two_approvals_reveal_once_runbook_checkin_rotates_review(browser, portal, page, sealed_account,
                                                                            ad_person, samba_dc):
    """GIVEN a sealed account (disabled in AD while sealed) naming the AD groups bg-responders and bg-approvers,
    a responder and two approvers who log in through the portal
    WHEN the responder asks for it (a wrong code first, then the current one), two approvers approve in the admin,
    the responder reveals the password, ticks two runbook steps, checks in and files the review, and an
    approver closes the review
    THEN the wrong code creates nothing; the responder's page turns open by itself; the password is shown once,
    by a no-store page, binds against the DC, and is never shown again (reload, back, forward, revisit, a second
    reveal); ticks are swapped in place and audited; after check-in the account is sealed again and the shown
    password no longer binds; the review ends closed by the approver."""
    account = sealed_account()
    dn = account.user_dn
    sealed_password = stored_password(account)
    assert ad_bind(samba_dc, dn, sealed_password) == "533"  # right password, but disabled while sealed
    responder_sam, responder_pw = ad_person(RESPONDERS, prefix="r")
    approvers = [ad_person(APPROVERS, prefix="a"), ad_person(APPROVERS, prefix="b")]

    # -- The responder logs in and finds the account sealed.
    totp, backup = login_and_enrol(page, portal, responder_sam, responder_pw, name_prefix="bg-responder-")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Break-glass").click()
    expect(page).to_have_url(re.compile(r"/breakglass/$"))
    row = page.locator(f"#account-{account.name}")
    expect(row.locator(".state")).to_have_text(_label("sealed"))
    expect(row.get_by_role("link", name="Envelope")).to_have_count(0)  # disabled while sealed: no envelopes
    shot(page, "bg-01-dashboard")
    row.get_by_role("link", name="Check out").click()

    # -- The form: incident, reason, runbook, duration, code. A wrong code is refused and nothing is created.
    expect(page).to_have_url(re.compile(rf"/breakglass/accounts/{account.pk}/checkout/$"))
    expect(page.locator("h1")).to_have_text(f"Check out {account.name}")
    page.get_by_label("Incident or change reference").fill("INC-4711")
    page.get_by_label("Reason", exact=True).fill("DC01 and DC02 do not answer; nobody can log on to fix them")
    runbook = page.get_by_label("Runbook you will follow")
    runbook.select_option(label=f"{RUNBOOK_TITLE} (critical)")
    expect(runbook).to_have_value("dc-outage")
    page.get_by_label("For how long (minutes)").fill("30")
    expect(page.get_by_label(re.compile("Emergency"))).not_to_be_checked()
    page.get_by_label("Current code").fill(_wrong_code(totp))
    shot(page, "bg-02-checkout-form")
    page.get_by_role("button", name=f"Ask for {account.name}").click()
    expect(page.locator("#form-error")).to_contain_text("Please correct the fields marked below")
    expect(page.locator(".field", has=page.get_by_label("Current code")).locator(".errorlist")).to_contain_text(
        "That code is not right")
    shot(page, "bg-03-wrong-code")
    assert not Checkout.objects.filter(account=account).exists()
    account.refresh_from_db()
    assert account.state == AccountState.SEALED
    # What was typed is kept; the code is typed again.
    expect(page.get_by_label("Incident or change reference")).to_have_value("INC-4711")
    expect(page.get_by_label("Runbook you will follow")).to_have_value("dc-outage")
    page.get_by_label("Current code").fill(_next_totp(totp, responder_sam))
    page.get_by_role("button", name=f"Ask for {account.name}").click()

    # -- Pending: the page says so and polls.
    expect(page).to_have_url(re.compile(r"/breakglass/checkouts/\d+/$"))
    pk = int(re.search(r"/checkouts/(\d+)/$", page.url).group(1))
    checkout = Checkout.objects.get(pk=pk)
    assert (checkout.account_id, checkout.holder.username) == (account.pk, responder_sam.lower())
    assert checkout.state == CheckoutState.PENDING
    assert (checkout.incident_ref, checkout.runbook_slug, checkout.duration_minutes) == ("INC-4711", "dc-outage", 30)
    assert checkout.mode == Checkout.Mode.DUAL and checkout.approvals_required == 2
    expect(page.locator(".msg.success")).to_contain_text(f"Checkout #{pk} of {account.name} waits for 2 approvers")
    expect(page.locator("#checkout-state .state")).to_have_text(_label("pending"))
    expect(page.locator("#checkout-state")).to_contain_text("none yet — 2 needed")
    expect(page.get_by_text("Waiting for approvers")).to_be_visible()
    expect(page.locator("#reveal-form")).to_have_count(0)
    expect(page.locator("#runbook h2")).to_contain_text(f"Runbook: {RUNBOOK_TITLE}")  # to read while waiting ...
    expect(page.locator("#runbook li.step").first).to_be_visible()
    expect(page.get_by_role("checkbox")).to_have_count(0)  # ... but not to tick before it is approved
    shot(page, "bg-04-pending")

    # -- Two approvers, each in their own browser, approve in the admin.
    for n, (sam, password) in enumerate(approvers, start=1):
        admin = _approver_admin(browser, portal, sam, password, f"bg-approver{n}-")
        row = _open_in_admin(admin, portal, "Checkouts", f"#{pk}")
        expect(row).to_contain_text("INC-4711")
        expect(row).to_contain_text(f"{n - 1} of 2")
        if n == 1:
            shot(admin, "bg-05-admin-checkouts")
        row.get_by_role("link", name=f"#{pk}").click()
        decision = admin.locator("#bg-decision")
        expect(decision).to_contain_text(f"dual control: {n - 1} of 2 approvals")
        expect(decision).to_contain_text(f"following “{RUNBOOK_TITLE}”")
        expect(decision.locator("#bg-approvals")).to_have_text(
            "none yet" if n == 1 else f"{approvers[0][0].lower()}: approve (approver 1: incident INC-4711 confirmed)")
        admin.get_by_label(re.compile("Comment")).fill(f"approver {n}: incident INC-4711 confirmed")
        if n == 2:
            shot(admin, "bg-06-admin-approve")
        admin.get_by_role("button", name="Approve").click()
        expect(admin.locator(".messagelist")).to_contain_text(
            "waits for another approver" if n == 1 else "Approved")
        expect(admin.get_by_role("button", name="Approve")).to_have_count(0)  # one decision per person
        if n == 1:
            first_admin = admin
        else:
            admin.context.close()
    assert CheckoutApproval.objects.filter(checkout_id=pk, decision="approve").count() == 2

    # -- The responder's page, untouched, turns open by itself (htmx polls, the worker enables the account).
    expect(page.locator("#checkout-state .state")).to_have_text(_label("open"), timeout=30_000)
    expect(page.locator("#reveal-form")).to_be_visible()
    expect(page.locator("#checkout-state")).to_contain_text(re.compile(r"approve.*approve.*2 needed"))
    # The window's end, in the browser's own time zone (the page says UTC until its script runs).
    window_ends = Checkout.objects.get(pk=pk).expires_at.astimezone(ZoneInfo("Europe/Berlin"))
    expect(page.locator("#checkout-state dd", has_text="until").locator("time")).to_contain_text(
        window_ends.strftime("%H:%M"))
    shot(page, "bg-07-open")

    # -- Reveal: a wrong code shows nothing; the right one shows the password once, on a no-store page.
    page.locator("#reveal-otp").fill("0000000000")
    page.get_by_role("button", name="Show the password once").click()
    expect(page.locator("#form-error")).to_contain_text("That code is not right")
    expect(page.locator("#bg-password")).to_have_count(0)
    assert Checkout.objects.get(pk=pk).revealed_at is None
    _backup_ready(responder_sam)
    page.locator("#reveal-otp").fill(backup[0])
    reveal_url = f"{portal}/breakglass/checkouts/{pk}/reveal/"
    with page.expect_response(lambda r: r.url == reveal_url and r.request.method == "POST") as info:
        page.get_by_role("button", name="Show the password once").click()
    response = info.value
    assert response.status == 200
    assert "no-store" in response.headers["cache-control"], response.headers
    expect(page.locator("#bg-password")).to_be_visible()
    password = page.locator("#bg-password").inner_text().strip()
    assert password == sealed_password and len(password) == 32
    assert ad_bind(samba_dc, dn, password) == "ok"  # enabled for the window: it logs on
    shot(page, "bg-08-password-once")

    def shows_nothing():
        assert password not in page.content()
        expect(page.locator("#bg-password")).to_have_count(0)

    def checkout_page_says_shown():
        expect(page).to_have_url(re.compile(rf"/checkouts/{pk}/$"))
        expect(page.locator("#checkout-state")).to_contain_text(re.compile(r"Password\s*shown .*; never again"))
        expect(page.locator("#reveal-form")).to_have_count(0)
        shows_nothing()

    # Reloading sends the form again: refused as already shown, nothing shown.
    reloaded = page.reload()
    assert reloaded.request.method == "POST" and reloaded.status == 400
    expect(page.locator("#form-error")).to_contain_text("never shown twice")
    expect(page.locator("#reveal-form")).to_have_count(0)
    shows_nothing()
    # Back over the two answers to POSTs (the wrong code's, the reveal's): Chromium kept neither.
    _history(page, page.go_back)
    shows_nothing()
    _history(page, page.go_back, kept=True)
    checkout_page_says_shown()
    for _ in range(2):  # and forward again, to the reveal
        _history(page, page.go_forward)
        shows_nothing()
    page.goto(f"{portal}/breakglass/checkouts/{pk}/")
    checkout_page_says_shown()
    shot(page, "bg-09-after-reveal")
    # Even a valid code cannot make the reveal answer twice.
    _backup_ready(responder_sam)  # the reload's resent code counted as a wrong one
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    again = page.request.post(reveal_url, form={"otp": backup[1], "csrfmiddlewaretoken": csrf},
                              headers={"Referer": portal + "/"})
    assert again.status == 400 and "never shown twice" in again.text() and password not in again.text()

    # -- The runbook: two steps ticked, each swapped in place by htmx (no reload) and audited.
    expect(page.locator("#runbook h2")).to_contain_text(f"Runbook: {RUNBOOK_TITLE}")
    page.evaluate("window.__bgSamePage = true")
    for number in (1, 2):
        box = page.get_by_role("checkbox", name=f"Step {number} done")
        expect(box).to_have_attribute("aria-checked", "false")
        box.click()
        expect(box).to_have_attribute("aria-checked", "true")
        expect(box).to_have_text("✓")
        step = page.locator("li.step", has=box)
        expect(step).to_have_class(re.compile(r"\bdone\b"))
        expect(step).to_contain_text(f"— {responder_sam.lower()}")
    expect(page.get_by_role("checkbox", name="Step 3 done")).to_have_attribute("aria-checked", "false")
    assert page.evaluate("window.__bgSamePage") is True
    ticked = AuditEvent.objects.filter(action="breakglass.step_ticked", object_type="checkout", object_id=str(pk))
    assert sorted(e.data["step"] for e in ticked) == [1, 2]
    assert {e.actor for e in ticked} == {responder_sam.lower()}
    assert RunbookTick.objects.filter(checkout_id=pk, done=True).count() == 2
    shot(page, "bg-10-runbook-ticked")

    # -- Check in: the page follows the rotation by itself; AD has a new password, the shown one is dead.
    page.get_by_role("button", name=re.compile("Check in now")).click()
    expect(page.locator(".msg.success")).to_contain_text(f"{account.name} is checked in")
    account = wait_account(account.pk, AccountState.SEALED, timeout=60)
    wait_checkout(pk, CheckoutState.CLOSED)
    expect(page.locator("#checkout-state .state")).to_have_text(_label("closed"), timeout=30_000)
    expect(page.locator("#checkout-state")).to_contain_text("by the holder")
    assert ad_bind(samba_dc, dn, password) == "52e"  # the password shown no longer works
    rotated = stored_password(account)
    assert rotated != password
    assert ad_bind(samba_dc, dn, rotated) == "533"  # jitad's new one is right, on a disabled account
    expect(page.locator("#checkin-form")).to_have_count(0)

    # -- The review: filed by the holder ...
    review = page.locator("#review")
    expect(review.locator("h2")).to_have_text("Post-incident review")
    shot(page, "bg-11-checked-in-review-form")
    review.get_by_role("group", name="Was the break-glass account needed?").get_by_label("yes", exact=True).check()
    review.get_by_label("What was done with it").fill("Seized the PDC emulator role on DC03 and reset time sync.")
    review.get_by_label(re.compile("^Follow-up")).fill("A third DC in the second site.")
    review.get_by_role("button", name="File the review").click()
    expect(page.locator(".msg.success")).to_contain_text("the review is filed")
    expect(page.locator("#review")).to_contain_text("Seized the PDC emulator role on DC03")
    expect(page.locator("#review-form")).to_be_hidden()  # changing it is one click away, not an empty form
    expect(page.locator("#review-update summary")).to_have_text("Change the review")
    filed = Review.objects.get(checkout_id=pk)
    assert (filed.state, filed.was_needed, filed.filed_by) == (Review.State.FILED, "yes", responder_sam.lower())
    shot(page, "bg-12-review-filed")

    # -- ... and closed by an approver in the admin's Reviews.
    row = _open_in_admin(first_admin, portal, "Reviews", f"#{pk} {account.name}")
    expect(row).to_contain_text("filed")
    row.get_by_role("link", name=f"#{pk} {account.name}").click()
    context = first_admin.locator("#bg-review")
    expect(context).to_contain_text("Seized the PDC emulator role on DC03")
    expect(context).to_contain_text("✓ 1.")
    expect(context).to_contain_text("✓ 2.")
    first_admin.get_by_label(re.compile("^Comment")).fill("Read; the second-site DC is planned.")
    shot(first_admin, "bg-13-admin-review")
    first_admin.get_by_role("button", name="Close the review").click()
    expect(first_admin.locator(".messagelist")).to_contain_text("Review closed")
    closed = Review.objects.get(checkout_id=pk)
    assert closed.state == Review.State.CLOSED and closed.closed_by == approvers[0][0].lower()
    first_admin.context.close()

    page.reload()
    expect(page.locator("#review")).to_contain_text(f"Closed by {approvers[0][0].lower()}")
    expect(page.locator("#review-form")).to_have_count(0)
    shot(page, "bg-14-review-closed")


def test_an_approver_denies_in_the_admin_and_the_responder_sees_why(browser, portal, page, sealed_account,
                                                                    ad_person):
    """GIVEN a responder who asked in the portal (with a backup code) for a sealed account, and an approver in the admin
    WHEN the approver presses Deny without a comment, then with one
    THEN the first is refused and the checkout still waits; the second ends it, the account stays sealed, and the
    responder's page turns denied by itself and shows who denied it and why."""
    account = sealed_account()
    responder_sam, responder_pw = ad_person(RESPONDERS, prefix="r")
    approver_sam, approver_pw = ad_person(APPROVERS, prefix="a")

    _totp, backup = login_and_enrol(page, portal, responder_sam, responder_pw, name_prefix="bg-deny-responder-")
    page.goto(f"{portal}/breakglass/")
    page.locator(f"#account-{account.name}").get_by_role("link", name="Check out").click()
    page.get_by_label("Incident or change reference").fill("INC-0815")
    page.get_by_label("Reason", exact=True).fill("The file server's DFS namespace is gone")
    page.get_by_label("Runbook you will follow").select_option("dc-outage")
    page.get_by_label("Current code").fill(backup[0])
    page.get_by_role("button", name=f"Ask for {account.name}").click()
    expect(page.locator("#checkout-state .state")).to_have_text(_label("pending"))
    pk = int(re.search(r"/checkouts/(\d+)/$", page.url).group(1))

    admin = _approver_admin(browser, portal, approver_sam, approver_pw, "bg-deny-approver-")
    admin.goto(f"{portal}/admin/breakglass/checkout/{pk}/change/")
    admin.get_by_role("button", name="Deny").click()
    expect(admin.locator(".messagelist")).to_contain_text("Say why you deny it")
    assert Checkout.objects.get(pk=pk).state == CheckoutState.PENDING
    admin.get_by_label(re.compile("Comment")).fill("Use the normal JIT path: DFS needs no domain admin")
    admin.get_by_role("button", name="Deny").click()
    expect(admin.locator(".messagelist")).to_contain_text("Denied")
    expect(admin.locator("#bg-decision .jitad-state")).to_have_text(_label("denied"))
    shot(admin, "bg-20-admin-denied")
    admin.context.close()

    assert Checkout.objects.get(pk=pk).state == CheckoutState.DENIED
    account.refresh_from_db()
    assert account.state == AccountState.SEALED
    expect(page.locator("#checkout-state .state")).to_have_text(_label("denied"), timeout=15_000)  # by itself
    expect(page.locator("#checkout-state")).to_contain_text(
        f"{approver_sam.lower()} (deny: Use the normal JIT path: DFS needs no domain admin)")
    expect(page.locator("#reveal-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel this request")).to_have_count(0)
    shot(page, "bg-21-denied")
    page.get_by_role("link", name="← Break-glass accounts").click()
    row = page.locator(f"#account-{account.name}")
    expect(row.locator(".state")).to_have_text(_label("sealed"))
    expect(row.get_by_role("link", name="Check out")).to_be_visible()
