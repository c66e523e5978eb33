"""Checking a paper envelope against the current seal: intact, stale, unknown, or opened (then rotated)."""
import uuid
from dataclasses import dataclass

from django.db import transaction

from jitad.audit.services import audit_record_many
from jitad.humantime import when

from ..errors import BreakglassRefused
from ..models import Seal, SealedAccount
from .seals import seal_break
from .common import account_entry


@dataclass(frozen=True)
class EnvelopeVerdict:
    """What an envelope's seal id says: ``current``, ``stale`` or ``unknown``; ``rotation`` when one was started."""

    status: str
    message: str
    account: SealedAccount
    rotation: uuid.UUID | None = None


def envelope_verify(*, account_name: str, seal_id: str, opened: bool, actor: str) -> EnvelopeVerdict:
    """Compare an envelope's seal id with ``account_name``'s seals; an opened envelope of the current seal rotates it."""
    account = SealedAccount.objects.filter(name__iexact=(account_name or "").strip()).first()
    if account is None:
        raise BreakglassRefused("no_such_account", f"No sealed account {account_name!r}.")
    seal_id = (seal_id or "").strip().upper()
    seal = Seal.objects.filter(account=account, seal_id=seal_id).first()
    rotation = None
    if seal is None:
        status = "unknown"
        message = (f"{seal_id} is not a seal jitad made for {account.name}: this envelope is not genuine, or belongs to "
                   "another account. Treat its contents as compromised and report it.")
        if opened:  # whatever it held, it may have been the working password
            rotation = seal_break(account=account, reason=Seal.Reason.ENVELOPE_OPENED, actor=actor,
                                  detail=f"an envelope with the unknown seal {seal_id} was opened")
            message += " The password is being rotated as a precaution."
    elif seal.broken_at is not None:
        status = "stale"
        message = (f"Seal {seal_id} of {account.name} was replaced on {when(seal.broken_at)} "
                   f"({seal.broken_reason or 'rotated'}): the password in this envelope no longer works. "
                   "Destroy it and print a new envelope.")
    else:
        status = "current"
        printed = (f" printed by {seal.envelope_printed_by} on {when(seal.envelope_printed_at)}"
                   if seal.envelope_printed_at else " (no envelope was printed through jitad for this seal!)")
        if opened:
            rotation = seal_break(account=account, reason=Seal.Reason.ENVELOPE_OPENED, actor=actor,
                                  detail=f"the envelope of seal {seal_id} was opened")
            account.refresh_from_db()
            message = (f"Seal {seal_id}{printed} is the current one and the envelope was opened: the seal is broken and "
                       + ("jitad is rotating the password now. Print a new envelope afterwards." if rotation else
                          f"{account.name} is {account.get_state_display()}: its password is rotated when that ends."))
        else:
            message = f"Seal {seal_id}{printed} is the current one: the envelope holds the working password."
    with transaction.atomic():
        audit_record_many([account_entry(account, actor=actor, action="breakglass.envelope_verified",
                                         before=account.state, after=account.state,
                                         reason=status, seal_id=seal_id, opened=opened, rotated=rotation is not None)])
    return EnvelopeVerdict(status=status, message=message, account=account, rotation=rotation)
