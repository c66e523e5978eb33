"""The offline fallback: a sealed-envelope sheet under dual control, and checking an envelope against the seals."""
import pytest
from django.core.management import call_command

from jitad.audit.models import AuditEvent
from jitad.breakglass import services
from jitad.breakglass.errors import BreakglassRefused
from jitad.breakglass.models import Checkout, Seal, SealedAccount
from tests.breakglass.helpers import ad_bind, stored_password, wait_account

pytestmark = pytest.mark.django_db(transaction=True)


def _envelope(account, people):
    checkout = services.envelope_request(account=account, requester=people.responder, incident_ref="CHG-77",
                                         reason="yearly envelope for the DR safe")
    assert checkout.approvals_required == 2
    with pytest.raises(BreakglassRefused):
        services.envelope_print(checkout=checkout, actor=people.responder)  # not approved yet
    services.checkout_approve(checkout=checkout, approver=people.approver1)
    services.checkout_approve(checkout=checkout, approver=people.approver2)
    return Checkout.objects.get(pk=checkout.pk)


def _verify(*args) -> int:
    try:
        call_command("jitad_breakglass_envelope", "verify", *args)
    except SystemExit as e:
        return int(e.code)
    return 0


def test_envelope_printed_once_then_verified_then_opened_and_rotated(live, samba_dc, people, sealed, alert_sink, capsys):
    """GIVEN an account kept enabled for envelopes WHEN two approvers allow an envelope, it is printed, and later the
    envelope is found opened THEN the sheet's password worked, printing twice is refused, the verify command tells
    current / stale / unknown apart, and an opened envelope gets the password rotated at once."""
    account = sealed(disable_when_sealed=False)
    checkout = _envelope(account, people)
    assert checkout.state == Checkout.State.OPEN
    with pytest.raises(BreakglassRefused):
        services.envelope_print(checkout=checkout, actor=people.approver1)  # only the requester prints
    sheet = services.envelope_print(checkout=checkout, actor=people.responder)
    assert sheet.seal_id == account.seal_id and sheet.account == account.name
    assert set(sheet.approvers) == {people.approver1.username, people.approver2.username}
    assert ad_bind(samba_dc, account.user_dn, sheet.password) == "ok"
    with pytest.raises(BreakglassRefused) as twice:
        services.envelope_print(checkout=checkout, actor=people.responder)
    assert twice.value.code == "already_revealed"
    account.refresh_from_db()
    assert account.state == SealedAccount.State.SEALED  # printing rotates nothing: the envelope must keep working
    assert Seal.objects.get(seal_id=sheet.seal_id).envelope_printed_by == people.responder.username
    assert AuditEvent.objects.filter(action="breakglass.envelope_printed", object_id=str(checkout.pk)).exists()

    assert _verify(account.name, sheet.seal_id) == 0
    assert "current" in capsys.readouterr().out
    assert _verify(account.name, "BG-0000-0000-0000") == 3
    assert _verify(account.name, sheet.seal_id, "--opened") == 0
    out = capsys.readouterr().out
    assert "rotated and sealed again" in out
    account = wait_account(account.pk, SealedAccount.State.SEALED)
    assert account.seal_id != sheet.seal_id
    assert Seal.objects.get(seal_id=account.seal_id).reason == Seal.Reason.ENVELOPE_OPENED
    assert ad_bind(samba_dc, account.user_dn, sheet.password) == "52e"
    assert ad_bind(samba_dc, account.user_dn, stored_password(account)) == "ok"
    assert _verify(account.name, sheet.seal_id) == 2
    assert "stale" in capsys.readouterr().out
    verified = AuditEvent.objects.filter(action="breakglass.envelope_verified", object_id=str(account.pk))
    assert verified.count() == 4


def test_no_envelope_for_an_account_disabled_while_sealed(live, people, sealed):
    account = sealed(disable_when_sealed=True)
    with pytest.raises(BreakglassRefused) as refused:
        services.envelope_request(account=account, requester=people.responder, incident_ref="CHG-1",
                                  reason="an envelope that could never log on")
    assert refused.value.code == "envelope_useless"


def test_an_unprinted_envelope_expires_without_rotating(live, people, sealed):
    from django.utils import timezone

    from tests.breakglass.helpers import wait_checkout

    account = sealed(disable_when_sealed=False)
    checkout = _envelope(account, people)
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now())
    closed = wait_checkout(checkout.pk, Checkout.State.CLOSED)
    assert closed.revealed_at is None and closed.checkin_kind == Checkout.CheckinKind.AUTO
    after = SealedAccount.objects.get(pk=account.pk)
    assert after.state == SealedAccount.State.SEALED and after.seal_id == account.seal_id
