"""The verified MFA step behind each break-glass checkout request and decision is recorded (database only, as
test_views.py: accounts sealed directly, no on_commit fires)."""
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

import pytest

from jitad.audit.models import AuditEvent
from jitad.breakglass import services
from jitad.breakglass.models import Checkout, CheckoutApproval, SealedAccount
from tests.support.mfa import backup_codes, verify_session

pytestmark = pytest.mark.usefixtures("db")


def person(name, *groups):
    user = User.objects.create_user(username=name, email=f"{name}@jitad.test")
    for g in groups:
        user.groups.add(Group.objects.get_or_create(name=g)[0])
    return user


@pytest.fixture
def account():
    return SealedAccount.objects.create(
        name="bg-da-mfa", state=SealedAccount.State.SEALED, seal_id="BG-MFA-0001", disable_when_sealed=False,
        responder_groups=["bg-responders"], approver_groups=["bg-approvers"], user_dn="CN=bg-da-mfa,DC=jitad,DC=test")


def _recent(at) -> bool:
    return at is not None and abs((timezone.now() - at).total_seconds()) < 120


def test_a_checkout_asked_on_the_portal_records_the_code_typed_with_it(client, account):
    rita = person("rita", "bg-responders")
    verify_session(client, rita)
    client.post(reverse("breakglass:checkout-new", args=[account.pk]),
                {"incident_ref": "INC-42", "reason": "DC01 is down, nobody can log on", "runbook": "dc-outage",
                 "duration_minutes": "30", "otp": backup_codes(rita, 1)[0]})
    checkout = Checkout.objects.get()
    assert checkout.mfa_method == "backup_code" and _recent(checkout.mfa_verified_at)
    event = AuditEvent.objects.get(action="breakglass.checkout_requested")
    assert event.data["mfa_method"] == "backup_code"


def test_admin_decisions_record_the_approver_s_step(client, account):
    rita, anna, ben = person("rita", "bg-responders"), person("anna", "bg-approvers"), person("ben", "bg-approvers")
    checkout = services.checkout_request(account=account, requester=rita, incident_ref="INC-1",
                                         reason="a reason long enough", runbook_slug="dc-outage", duration_minutes=30)
    assert (checkout.mfa_method, checkout.mfa_verified_at) == ("", None)
    decide = reverse("admin:breakglass_checkout_decide", args=[checkout.pk])
    verify_session(client, anna)
    client.post(decide, {"decision": "approve"})
    verify_session(client, ben)
    client.post(decide, {"decision": "deny", "comment": "not this account"})
    rows = {a.approver.username: a for a in CheckoutApproval.objects.all()}
    assert rows["anna"].mfa_method == "totp" and _recent(rows["anna"].mfa_verified_at)
    assert rows["ben"].mfa_method == "totp" and rows["ben"].decision == CheckoutApproval.Decision.DENY
    assert AuditEvent.objects.get(action="breakglass.checkout_approval").data["mfa_method"] == "totp"
