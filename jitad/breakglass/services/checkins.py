"""Check-in: the holder gives a checkout back, an approver forces it, its window ends, or its holder is blocked.

A checkout that was used is rotated at check-in (jitad.breakglass.services.accounts); an
envelope that was never printed closes with the account sealed as it was.
"""
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from jitad.audit.services import audit_record_many

from ..errors import BreakglassRefused
from ..models import Checkout, Review, Seal, SealedAccount
from ..selectors import can_force_checkin
from .accounts import rotation_start
from .common import checkout_entry, end_unused, locked_pending, tell_holder

AccountState = SealedAccount.State
CheckoutState = Checkout.State


def checkout_checkin(*, checkout: Checkout, actor, reason: str = "") -> Checkout:
    """The holder gives the account back, or an approver/admin forces it: the password is rotated now."""
    forced = actor.pk != checkout.holder_id
    if forced:
        reason = (reason or "").strip()
        if not can_force_checkin(user=actor, checkout=checkout):
            raise BreakglassRefused("not_allowed", f"You may not check in {checkout.account.name} for its holder.")
        if not reason:
            raise BreakglassRefused("reason_required", "Forcing a check-in needs a reason; the holder sees it.")
    kind = Checkout.CheckinKind.FORCED if forced else Checkout.CheckinKind.HOLDER
    return _checkin(checkout, kind=kind, actor=actor.get_username(), reason=reason)


def _checkin(checkout: Checkout, *, kind: str, actor: str, reason: str = "") -> Checkout:
    with transaction.atomic():
        row = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").get(pk=checkout.pk)
        if row.state not in (CheckoutState.OPENING, CheckoutState.OPEN):
            raise BreakglassRefused("not_open", f"Checkout #{row.pk} is {row.get_state_display()}: nothing to check in.")
        now = timezone.now()
        before = row.state
        row.checkin_at, row.checkin_kind, row.checkin_by = now, kind, actor
        row.claim_token = row.lease_until = None
        account = SealedAccount.objects.select_for_update().get(pk=row.account_id)
        if row.purpose == Checkout.Purpose.ENVELOPE:
            # Never printed (printing closes it): nothing was revealed, nothing to rotate.
            row.state, row.closed_at = CheckoutState.CLOSED, now
            account.state = AccountState.SEALED
            account.save(update_fields=["state", "updated_at"])
        else:
            row.state = CheckoutState.RETURNING
            Review.objects.get_or_create(checkout=row, defaults={"mandatory": row.mode == Checkout.Mode.EMERGENCY})
            rotation_start(account=account, reason=Seal.Reason.CHECKED_IN, actor=actor,
                           detail=f"check-in of checkout #{row.pk}")
        row.save(update_fields=["checkin_at", "checkin_kind", "checkin_by", "claim_token", "lease_until", "state",
                                "closed_at"])
        audit_record_many([checkout_entry(row, actor=actor, action="breakglass.checked_in", before=before,
                                          after=row.state, reason=reason or kind, kind=kind,
                                          revealed=row.revealed_at is not None)])
        if row.purpose == Checkout.Purpose.USE and kind != Checkout.CheckinKind.HOLDER:
            why = f"{actor} checked it in: {reason}" if kind == Checkout.CheckinKind.FORCED else "its window ended"
            tell_holder(row, f"Checked in: {row.account.name} (checkout #{row.pk})",
                         f"Your checkout of {row.account.name} is over: {why}. The password is being rotated; "
                         "the one you saw no longer works. Please file the post-incident review in jitad.",
                         "breakglass.checked_in")
    return row


def checkouts_checkin_due(*, now: datetime | None = None) -> int:
    """Check in every checkout whose window has ended."""
    now = now or timezone.now()
    done = 0
    due = Checkout.objects.filter(state__in=[CheckoutState.OPENING, CheckoutState.OPEN], expires_at__lte=now).values_list("pk", flat=True)
    for pk in list(due[:500]):
        try:
            _checkin(Checkout(pk=pk), kind=Checkout.CheckinKind.AUTO, actor="system:breakglass")
            done += 1
        except BreakglassRefused:  # checked in meanwhile
            pass
    return done


def checkouts_end_for_user(*, user, actor: str, reason: str) -> int:
    """A person blocked in jitad (AD disabled or removed them): their checkouts end now; returns how many."""
    ended = 0
    for checkout in Checkout.objects.filter(holder=user, state__in=[CheckoutState.PENDING, CheckoutState.OPENING, CheckoutState.OPEN]):
        try:
            if checkout.state == CheckoutState.PENDING:
                with transaction.atomic():
                    end_unused(locked_pending(checkout), state=CheckoutState.CANCELLED, actor=actor, reason=reason)
            else:
                _checkin(checkout, kind=Checkout.CheckinKind.FORCED, actor=actor, reason=reason)
            ended += 1
        except BreakglassRefused:  # moved on meanwhile
            pass
    return ended


def checkouts_end_for_blocked(sender, *, user, actor: str, reason: str, **kwargs) -> dict[str, int]:
    """Receiver of accounts' ``account_blocked``: the person's break-glass checkouts end now."""
    return {"checkouts_ended": checkouts_end_for_user(user=user, actor=actor, reason=reason)}
