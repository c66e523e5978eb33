"""A checkout's password: revealed once to the holder, or printed once on a sealed envelope."""
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from jitad.audit.services import audit_record_many
from jitad.humantime import when
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..errors import BreakglassRefused
from ..models import Checkout, CheckoutApproval, Seal, SealedAccount
from ..vault import secret_open
from .common import admin_link, checkout_entry

AccountState = SealedAccount.State
CheckoutState = Checkout.State


def _locked_open_for_holder(checkout: Checkout, actor, purpose: str) -> Checkout:
    row = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").get(pk=checkout.pk)
    if actor.pk != row.holder_id:
        raise BreakglassRefused("not_holder", "Only the holder of a checkout sees its password.")
    if row.purpose != purpose:
        raise BreakglassRefused("wrong_purpose", "This checkout is not for that.")
    if row.revealed_at is not None:
        raise BreakglassRefused("already_revealed",
                                f"The password of checkout #{row.pk} was shown on {when(row.revealed_at)} "
                                "and is never shown twice. Lost it? Check in and ask again.")
    if row.state != CheckoutState.OPEN:
        raise BreakglassRefused("not_open", f"Checkout #{row.pk} is {row.get_state_display()}, not open.")
    return row


@sensitive_variables("password")
def checkout_reveal(*, checkout: Checkout, actor) -> str:
    """The holder sees the password, once; audited and told to the security channel."""
    with transaction.atomic():
        row = _locked_open_for_holder(checkout, actor, Checkout.Purpose.USE)
        password = secret_open(ref=row.account.vault_ref, token=row.account.secret)
        row.revealed_at = timezone.now()
        row.save(update_fields=["revealed_at"])
        audit_record_many([checkout_entry(row, actor=actor.get_username(), action="breakglass.password_revealed",
                                          before=row.state, after=row.state, seal_id=row.account.seal_id)])
        alert_raise(
            event="breakglass.revealed", severity=Notification.Severity.WARNING,
            subject=f"Break-glass password of {row.account.name} shown to {actor.get_username()} (checkout #{row.pk})",
            body=f"Incident {row.incident_ref}. The window ends {when(row.expires_at)}; the password is "
                 "rotated at check-in.",
            link=admin_link("checkout", row.pk), object_type="checkout", object_id=row.pk,
        )
    return password


@dataclass(frozen=True)
class EnvelopeSheet:
    """What a printed sealed envelope carries."""

    account: str
    domain: str
    password: str = field(repr=False)
    seal_id: str = ""
    printed_at: datetime | None = None
    printed_by: str = ""
    checkout_id: int = 0
    approvers: tuple[str, ...] = ()


@sensitive_variables("password")
def envelope_print(*, checkout: Checkout, actor) -> EnvelopeSheet:
    """The requester of an approved envelope gets the sheet, once; the checkout closes without rotating."""
    now = timezone.now()
    with transaction.atomic():
        row = _locked_open_for_holder(checkout, actor, Checkout.Purpose.ENVELOPE)
        account = SealedAccount.objects.select_for_update().get(pk=row.account_id)
        if account.seal_id != row.seal_id or not Seal.objects.filter(seal_id=account.seal_id,
                                                                      broken_at__isnull=True).exists():
            raise BreakglassRefused("seal_changed", "The password changed since this envelope was approved; ask again.")
        password = secret_open(ref=account.vault_ref, token=account.secret)
        row.revealed_at = row.closed_at = row.checkin_at = now
        row.state, row.checkin_kind, row.checkin_by = CheckoutState.CLOSED, Checkout.CheckinKind.PRINTED, actor.get_username()
        row.save(update_fields=["revealed_at", "closed_at", "checkin_at", "state", "checkin_kind", "checkin_by"])
        account.state = AccountState.SEALED
        account.save(update_fields=["state", "updated_at"])
        Seal.objects.filter(seal_id=account.seal_id).update(envelope_printed_at=now, envelope_printed_by=actor.get_username())
        approvers = tuple(row.approvals.filter(decision=CheckoutApproval.Decision.APPROVE)
                          .values_list("approver__username", flat=True))
        audit_record_many([checkout_entry(row, actor=actor.get_username(), action="breakglass.envelope_printed",
                                          before=CheckoutState.OPEN, after=CheckoutState.CLOSED, seal_id=account.seal_id,
                                          approvers=list(approvers))])
        alert_raise(
            event="breakglass.envelope_printed", severity=Notification.Severity.WARNING,
            subject=f"Sealed envelope of {account.name} printed by {actor.get_username()} (seal {account.seal_id})",
            body=f"Approved by {', '.join(approvers)}. The envelope holds the current password until the next rotation.",
            link=admin_link("checkout", row.pk), object_type="checkout", object_id=row.pk,
        )
    domain = settings.JITAD_LDAP_BASE_DN
    return EnvelopeSheet(account=account.name, domain=domain, password=password, seal_id=account.seal_id,
                         printed_at=now, printed_by=actor.get_username(), checkout_id=row.pk, approvers=approvers)
