"""What the break-glass services share: leases, audit entries, links, the claim swap."""
import logging
import uuid

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from jitad.audit.services import AuditEntry, audit_record_many
from jitad.engine import claims, keeper, queue

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
    claims.release(model, [pk], token)


def enqueue(task_name: str, model, pk: int, token: uuid.UUID) -> None:
    """Send the wake-up call; with the broker down the claim is handed back and the sweeper sends it again."""
    queue.enqueue(task_name, pk, str(token), on_failure=lambda: release(model, pk, token))


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


