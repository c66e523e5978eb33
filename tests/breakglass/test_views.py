"""The break-glass pages: asking (with a code in the request), revealing once on a page nothing keeps, the runbook
checklist, check-in, reviews, and the admin's decisions.

The database only: accounts are made sealed directly (a vault token of a known password), and under the ``db``
fixture no on_commit fires, so nothing reaches a worker or the DC. The end-to-end path against Samba is in
test_lifecycle.py and the browser test.
"""
import re

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from jitad.audit.models import AuditEvent
from jitad.breakglass import services
from jitad.breakglass.models import Checkout, Review, RunbookTick, Seal, SealedAccount
from jitad.breakglass.runbooks import runbook_get
from jitad.breakglass.vault import secret_seal
from tests.support.mfa import backup_codes, stale_age, verify_session

PASSWORD = "Known-To-The-Test-Only-42!"


def person(name, *groups):
    user = User.objects.create_user(username=name, email=f"{name}@jitad.test")
    for g in groups:
        user.groups.add(Group.objects.get_or_create(name=g)[0])
    return user


@pytest.fixture
def account(db):
    account = SealedAccount.objects.create(
        name="bg-da-views", state=SealedAccount.State.SEALED, seal_id="BG-VIEW-0000-0001", disable_when_sealed=False,
        responder_groups=["bg-responders"], approver_groups=["bg-approvers"], user_dn="CN=bg-da-views,DC=jitad,DC=test")
    account.secret = secret_seal(ref=account.vault_ref, password=PASSWORD)
    account.save(update_fields=["secret"])
    Seal.objects.create(account=account, seal_id=account.seal_id, reason=Seal.Reason.ENROLLED)
    return account


@pytest.fixture
def responder(db):
    return person("rita", "bg-responders")


@pytest.fixture
def approvers(db):
    return person("anna", "bg-approvers"), person("ben", "bg-approvers")


def ask_form(code, **kw):
    data = {"incident_ref": "INC-42", "reason": "DC01 is down, nobody can log on", "runbook": "dc-outage",
            "duration_minutes": "30", "otp": code}
    data.update(kw)
    return data


def open_checkout(account, responder, approvers) -> Checkout:
    checkout = services.checkout_request(account=account, requester=responder, incident_ref="INC-1",
                                         reason="a reason long enough", runbook_slug="dc-outage", duration_minutes=30)
    for a in approvers:
        services.checkout_approve(checkout=checkout, approver=a)
    checkout.refresh_from_db()
    assert checkout.state == Checkout.State.OPEN
    return checkout


def test_dashboard_shows_accounts_to_responders_and_approvers_only(client, account, responder, approvers):
    verify_session(client, responder)
    page = client.get(reverse("breakglass:dashboard")).content.decode()
    assert "bg-da-views" in page and reverse("breakglass:checkout-new", args=[account.pk]) in page
    outsider = person("otto", "staff-ish")
    verify_session(client, outsider)
    page = client.get(reverse("breakglass:dashboard")).content.decode()
    assert "bg-da-views" not in page and "not a responder or an approver" in page
    assert client.get(reverse("breakglass:checkout-new", args=[account.pk])).status_code == 404


def test_asking_needs_a_current_code_in_the_request_itself(client, account, responder):
    """GIVEN a freshly verified session WHEN the form comes without a code, or with a wrong one THEN nothing is
    created; with a right code the checkout is asked for."""
    verify_session(client, responder)
    url = reverse("breakglass:checkout-new", args=[account.pk])
    no_code = client.post(url, ask_form(""))
    assert no_code.status_code == 400 and "Enter the current code" in no_code.content.decode()
    wrong = client.post(url, ask_form("123456"))
    assert wrong.status_code == 400 and "not right" in wrong.content.decode()
    assert not Checkout.objects.exists()
    ok = client.post(url, ask_form(backup_codes(responder, 1)[0]))
    checkout = Checkout.objects.get()
    assert ok.status_code == 302 and ok["Location"] == reverse("breakglass:checkout", args=[checkout.pk])
    assert checkout.state == Checkout.State.PENDING and checkout.runbook_slug == "dc-outage"


@pytest.mark.parametrize("field,value,message", [
    ("incident_ref", "", "This field is required"),
    ("reason", "short", "at least 10"),
    ("duration_minutes", "9999", "5 to 240 minutes"),
    ("duration_minutes", "abc", "whole number"),
    ("runbook", "../../etc/passwd", "Select a valid choice"),
    ("runbook", "", "Pick the runbook"),
])
def test_bad_fields_are_explained_and_nothing_is_created(client, account, responder, field, value, message):
    verify_session(client, responder)
    response = client.post(reverse("breakglass:checkout-new", args=[account.pk]),
                           ask_form(backup_codes(responder, 1)[0], **{field: value}))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Checkout.objects.exists()


def test_a_busy_account_is_a_clear_refusal(client, account, responder, approvers):
    other = person("carl", "bg-responders")
    services.checkout_request(account=account, requester=other, incident_ref="INC-9", reason="first come first served",
                              runbook_slug="dc-outage", duration_minutes=30)
    verify_session(client, responder)
    response = client.post(reverse("breakglass:checkout-new", args=[account.pk]), ask_form(backup_codes(responder, 1)[0]))
    assert response.status_code == 400 and "one holder at a time" in response.content.decode()


def test_the_password_is_shown_once_with_a_code_on_a_page_nothing_keeps(client, account, responder, approvers):
    checkout = open_checkout(account, responder, approvers)
    codes = backup_codes(responder, 3)
    verify_session(client, responder)
    detail = client.get(reverse("breakglass:checkout", args=[checkout.pk]))
    assert "Show the password once" in detail.content.decode() and PASSWORD not in detail.content.decode()
    reveal = reverse("breakglass:checkout-reveal", args=[checkout.pk])
    assert client.get(reveal).status_code == 405
    wrong = client.post(reveal, {"otp": "000000"})
    assert wrong.status_code == 400 and PASSWORD not in wrong.content.decode()
    shown = client.post(reveal, {"otp": codes[0]})
    assert shown.status_code == 200 and PASSWORD in shown.content.decode()
    assert "no-store" in shown["Cache-Control"] and shown["Pragma"] == "no-cache"
    again = client.post(reveal, {"otp": codes[1]})
    assert again.status_code == 400 and PASSWORD not in again.content.decode()
    assert "never shown twice" in again.content.decode()
    after = client.get(reverse("breakglass:checkout", args=[checkout.pk])).content.decode()
    assert PASSWORD not in after and "Show the password once" not in after and "never again" in after
    assert AuditEvent.objects.filter(action="breakglass.password_revealed", object_id=str(checkout.pk)).count() == 1


def test_only_the_holder_sees_the_password(client, account, responder, approvers):
    checkout = open_checkout(account, responder, approvers)
    verify_session(client, approvers[0])
    response = client.post(reverse("breakglass:checkout-reveal", args=[checkout.pk]),
                           {"otp": backup_codes(approvers[0], 1)[0]})
    assert response.status_code == 400 and PASSWORD not in response.content.decode()
    verify_session(client, person("otto"))
    assert client.get(reverse("breakglass:checkout", args=[checkout.pk])).status_code == 404
    assert client.post(reverse("breakglass:checkout-reveal", args=[checkout.pk]), {"otp": "1"}).status_code == 404


def test_a_stale_session_is_asked_to_step_up_before_anything(client, account, responder, approvers):
    checkout = open_checkout(account, responder, approvers)
    verify_session(client, responder, age_seconds=stale_age())
    response = client.post(reverse("breakglass:checkout-checkin", args=[checkout.pk]))
    assert response.status_code == 403  # the step-up page, not a check-in
    assert Checkout.objects.get(pk=checkout.pk).state == Checkout.State.OPEN


def test_runbook_ticks_are_audited_and_limited_to_the_holder(client, account, responder, approvers):
    checkout = open_checkout(account, responder, approvers)
    step = runbook_get("dc-outage").steps[0]
    url = reverse("breakglass:checkout-tick", args=[checkout.pk, step.id])
    verify_session(client, responder)
    done = client.post(url, {"done": "1"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 200 and 'aria-checked="true"' in done.content.decode()
    assert RunbookTick.objects.get(checkout=checkout, step_id=step.id).done
    client.post(url, {"done": "0"}, HTTP_HX_REQUEST="true")
    assert not RunbookTick.objects.get(checkout=checkout, step_id=step.id).done
    actions = list(AuditEvent.objects.filter(object_id=str(checkout.pk), action__startswith="breakglass.step_")
                   .values_list("action", flat=True))
    assert actions == ["breakglass.step_ticked", "breakglass.step_unticked"]
    bogus = client.post(reverse("breakglass:checkout-tick", args=[checkout.pk, "s0000000000"]), {"done": "1"},
                        HTTP_HX_REQUEST="true")
    assert bogus.status_code == 400
    verify_session(client, approvers[0])
    assert client.post(url, {"done": "1"}, HTTP_HX_REQUEST="true").status_code == 400


def test_checkin_then_review_filed_then_closed_in_the_admin(client, account, responder, approvers):
    checkout = open_checkout(account, responder, approvers)
    verify_session(client, responder)
    assert client.post(reverse("breakglass:checkout-checkin", args=[checkout.pk])).status_code == 302
    checkout.refresh_from_db()
    assert checkout.state == Checkout.State.RETURNING
    assert SealedAccount.objects.get(pk=account.pk).state == SealedAccount.State.ROTATING
    short = client.post(reverse("breakglass:checkout-review", args=[checkout.pk]),
                        {"was_needed": "yes", "what_was_done": "stuff"})
    assert short.status_code == 400 and "at least 20" in short.content.decode()
    filed = client.post(reverse("breakglass:checkout-review", args=[checkout.pk]),
                        {"was_needed": "partly", "what_was_done": "Restarted the KDC service on DC02 and checked logs.",
                         "follow_up": "Give the on-call team a JIT role for this."})
    assert filed.status_code == 302
    review = Review.objects.get(checkout=checkout)
    assert review.state == Review.State.FILED
    # The holder cannot close their own review; an approver can, in the admin.
    verify_session(client, responder)
    assert client.post(reverse("admin:breakglass_review_close", args=[review.pk]), {"comment": "ok"}).status_code in (302, 403)
    assert Review.objects.get(pk=review.pk).state == Review.State.FILED
    verify_session(client, approvers[0])
    page = client.get(reverse("admin:breakglass_review_change", args=[review.pk])).content.decode()
    assert "Restarted the KDC" in page and "Close the review" in page
    client.post(reverse("admin:breakglass_review_close", args=[review.pk]), {"comment": "thanks"})
    assert Review.objects.get(pk=review.pk).state == Review.State.CLOSED


def test_approvers_decide_in_the_admin_never_their_own(client, account, responder, approvers):
    checkout = services.checkout_request(account=account, requester=responder, incident_ref="INC-5",
                                         reason="a reason long enough", runbook_slug="dc-outage", duration_minutes=30)
    decide = reverse("admin:breakglass_checkout_decide", args=[checkout.pk])
    verify_session(client, approvers[0])
    page = client.get(reverse("admin:breakglass_checkout_change", args=[checkout.pk])).content.decode()
    assert 'value="approve"' in page and "INC-5" in page
    client.post(decide, {"decision": "approve"})
    assert checkout.approvals.count() == 1
    client.post(decide, {"decision": "approve"})  # twice by the same person counts once
    assert Checkout.objects.get(pk=checkout.pk).state == Checkout.State.PENDING
    verify_session(client, responder)  # a responder who is no approver is kept out of the admin
    assert client.post(decide, {"decision": "approve"}).status_code == 302
    assert checkout.approvals.count() == 1
    verify_session(client, approvers[1])
    client.post(decide, {"decision": "approve"})
    assert Checkout.objects.get(pk=checkout.pk).state == Checkout.State.OPEN


def test_an_approver_cannot_approve_their_own_checkout_in_the_admin(client, account, approvers):
    both = person("dora", "bg-approvers", "bg-responders")
    checkout = services.checkout_request(account=account, requester=both, incident_ref="INC-6",
                                         reason="a reason long enough", runbook_slug="dc-outage", duration_minutes=30)
    verify_session(client, both)
    page = client.get(reverse("admin:breakglass_checkout_change", args=[checkout.pk])).content.decode()
    assert "your own checkout" in page and 'value="approve"' not in page
    response = client.post(reverse("admin:breakglass_checkout_decide", args=[checkout.pk]), {"decision": "approve"},
                           follow=True)
    assert "Nobody approves their own checkout" in response.content.decode()
    assert not checkout.approvals.exists()


def test_admin_pages_never_show_a_secret(client, account, responder, approvers, admin_user):
    verify_session(client, admin_user)
    for url in (reverse("admin:breakglass_sealedaccount_changelist"),
                reverse("admin:breakglass_sealedaccount_change", args=[account.pk])):
        response = client.get(url)
        body = response.content.decode()
        assert response.status_code == 200 and account.name in body  # the page rendered, with the account on it
        assert account.secret not in body and PASSWORD not in body and 'name="secret"' not in body


def test_runbook_pages_render_sanitised(client, responder, settings, tmp_path):
    (tmp_path / "evil.md").write_text(
        "---\ntitle: Evil <script>x</script>\napplies-to: ['*']\nseverity: low\n---\n"
        "<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n\n- [ ] step <b onclick=alert(3)>bold</b> "
        "[link](javascript:alert(4))\n")
    settings.JITAD_RUNBOOK_DIR = tmp_path
    verify_session(client, responder)
    body = client.get(reverse("breakglass:runbook", args=["evil"])).content.decode()
    assert "<script>alert" not in body and "onerror" not in body and "onclick" not in body
    assert "javascript:" not in body
    assert "Evil &lt;script&gt;" in body  # the title is text, escaped
    assert client.get("/breakglass/runbooks/..%2Fsettings/").status_code == 404
    assert re.search(r"step\s", body)


def test_the_envelope_sheet_is_printed_once_by_its_requester(client, account, responder, approvers):
    envelope = services.envelope_request(account=account, requester=responder, incident_ref="CHG-9",
                                         reason="an envelope for the DR safe")
    for a in approvers:
        services.checkout_approve(checkout=envelope, approver=a)
    codes = backup_codes(responder, 2)
    verify_session(client, responder)
    page = client.get(reverse("breakglass:checkout", args=[envelope.pk])).content.decode()
    assert "Show the sheet to print" in page
    sheet = client.post(reverse("breakglass:envelope-print", args=[envelope.pk]), {"otp": codes[0]})
    body = sheet.content.decode()
    assert sheet.status_code == 200 and PASSWORD in body and account.seal_id in body and "no-store" in sheet["Cache-Control"]
    again = client.post(reverse("breakglass:envelope-print", args=[envelope.pk]), {"otp": codes[1]})
    assert again.status_code == 400 and PASSWORD not in again.content.decode()
    assert SealedAccount.objects.get(pk=account.pk).state == SealedAccount.State.SEALED
