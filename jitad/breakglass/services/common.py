"""What the break-glass services share: leases, audit entries, links, the claim swap, telling a holder."""
import logging
import uuid

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from jitad.audit.services import AuditEntry, audit_record_many
from jitad.engine import claims, keeper, queue
from jitad.notifications.services import notification_create

from ..errors import BreakglassRefused
from ..models import Checkout, SealedAccount

log = logging.getLogger(__name__)


def lease(now=None):
    """When a claim taken now lapses unless its holder renews it (jitad/engine/keeper.py)."""
    return keeper.lease_until(now)


def account_entry(account: SealedAccount, *, actor: str, action: str, before: str = "", after: str = "",
                  reason: str = "", **data) -> AuditEntry:
    return AuditEntry(actor=actor, action=action, object_type="sealed_account", object_id=str(account.pk),
                      before=before, after=after, reason=reason, data={"account": account.name, **data})


def checkout_entry(checkout: Checkout, *, actor: str, action: str, before: str = "", after: str = "",
                   reason: str = "", **data) -> AuditEntry:
    return AuditEntry(
        actor=actor, action=action, object_type="checkout", object_id=str(checkout.pk), before=before, after=after,
        reason=reason,
        data={"account": checkout.account.name, "holder": checkout.holder.get_username(),
              "incident": checkout.incident_ref, "purpose": checkout.purpose, "mode": checkout.mode, **data},
    )


def portal_link(name: str, *args) -> str:
    return settings.JITAD_BASE_URL + reverse(name, args=args)


def admin_link(model: str, pk) -> str:
    return portal_link(f"admin:breakglass_{model}_change", pk)


def take(model, pk: int, token) -> tuple[object | None, uuid.UUID]:
    """Swap the claim a message carries for this execution's own; a duplicate message gets nothing."""
    mine, rows = claims.take(model, [pk], token)
    return (rows[0] if rows else None), mine


def release(model, pk: int, token) -> None:
    """Hand the claim back to the sweep at once (the work is not this execution's to do, or was not started)."""
    claims.release(model, [pk], token)


def enqueue(task_name: str, model, pk: int, token: uuid.UUID) -> None:
    """Send the wake-up call; with the broker down the claim is handed back and the sweeper sends it again."""
    queue.enqueue(task_name, pk, str(token), on_failure=lambda: release(model, pk, token))


def enqueue_rotate(account_id: int, token: uuid.UUID) -> None:
    """Wake a worker to set a sealed account's password (jitad.breakglass.services.accounts)."""
    enqueue("jitad.breakglass.account_rotate", SealedAccount, account_id, token)


def enqueue_open(checkout_id: int, token: uuid.UUID) -> None:
    """Wake a worker to enable the account of an approved checkout (jitad.breakglass.services.checkout_opening)."""
    enqueue("jitad.breakglass.checkout_open", Checkout, checkout_id, token)


def who(user) -> str:
    """A person as shown in messages: "Full Name (username)", or the username alone."""
    full = user.get_full_name()
    return f"{full} ({user.get_username()})" if full else user.get_username()


def tell_holder(checkout: Checkout, subject: str, body: str, event: str) -> None:
    """Tell the holder of ``checkout`` what happened to it, with a link to its portal page."""
    notification_create(event=event, subject=subject, body=body, link=portal_link("breakglass:checkout", checkout.pk),
                        object_type="checkout", object_id=checkout.pk, people=[checkout.holder])


def locked_pending(checkout: Checkout) -> Checkout:
    """The checkout, locked, while it waits for a decision; a refusal once it has moved on (caller's transaction)."""
    row = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").get(pk=checkout.pk)
    if row.state != Checkout.State.PENDING:
        raise BreakglassRefused("not_pending", f"Checkout #{row.pk} is {row.get_state_display()}, not waiting for a decision.")
    return row


def end_unused(row: Checkout, *, state: str, actor: str, reason: str) -> None:
    """End a checkout that never revealed anything: the account is sealed as it was (caller's transaction)."""
    before = row.state
    row.state, row.decided_at, row.closed_at = state, row.decided_at or timezone.now(), timezone.now()
    row.claim_token = row.lease_until = None
    row.save(update_fields=["state", "decided_at", "closed_at", "claim_token", "lease_until"])
    SealedAccount.objects.filter(pk=row.account_id, state=SealedAccount.State.CHECKED_OUT).update(
        state=SealedAccount.State.SEALED, updated_at=timezone.now())
    audit_record_many([checkout_entry(row, actor=actor, action=f"breakglass.checkout_{state}", before=before,
                                      after=state, reason=reason)])
