"""Checkouts, asked and decided: ask (dual control or emergency), ask for an envelope, approve, deny, cancel, expire.

The portal and the admin enforce a fresh OTP for every step of a checkout (jitad.accounts.middleware),
and the views for asking and revealing demand a code in that very request. These services
enforce who may do what, the lifecycle, and exclusivity: one live checkout per account,
by a row lock on the account and a partial unique constraint behind it.
"""
import re
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jitad.accounts.mfa import MfaStep, mfa_step_audit, mfa_step_fields
from jitad.audit.services import audit_record_many
from jitad.humantime import when
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise, notification_create

from ..errors import BreakglassRefused
from ..models import Checkout, CheckoutApproval, SealedAccount
from ..runbooks import runbook_get
from ..selectors import account_approvers, can_decide_checkout, is_responder
from .common import (admin_link, checkout_entry, end_unused, enqueue_open, lease, locked_pending, tell_holder,
                     who)

AccountState = SealedAccount.State
CheckoutState = Checkout.State
INCIDENT_MAX = 64
REASON_MAX = 4000


def _validated(account: SealedAccount, *, incident_ref: str, reason: str, runbook_slug: str, duration_minutes: int,
               purpose: str) -> tuple[str, str, object]:
    incident_ref, reason = (incident_ref or "").strip(), (reason or "").strip()
    if not incident_ref:
        raise BreakglassRefused("incident_required", "Enter the incident this is for.")
    if len(incident_ref) > INCIDENT_MAX:
        raise BreakglassRefused("incident_invalid", f"An incident reference has at most {INCIDENT_MAX} characters.")
    pattern = settings.JITAD_BREAKGLASS_INCIDENT_PATTERN
    if pattern and not re.fullmatch(pattern, incident_ref):
        raise BreakglassRefused("incident_invalid", f"An incident reference looks like {pattern}.")
    if len(reason) < settings.JITAD_BREAKGLASS_REASON_MIN:
        raise BreakglassRefused("reason_required",
                                f"Say why, in at least {settings.JITAD_BREAKGLASS_REASON_MIN} characters.")
    if len(reason) > REASON_MAX:
        raise BreakglassRefused("reason_too_long", f"A reason has at most {REASON_MAX} characters.")
    runbook = None
    if purpose == Checkout.Purpose.USE:
        if not isinstance(duration_minutes, int) or not 5 <= duration_minutes <= account.max_checkout_minutes:
            raise BreakglassRefused("duration_invalid",
                                    f"A checkout of {account.name} lasts 5 to {account.max_checkout_minutes} minutes.")
        runbook = runbook_get(runbook_slug) if runbook_slug else None
        if runbook_slug and (runbook is None or not runbook.applies(account.name)):
            raise BreakglassRefused("runbook_invalid", f"No runbook {runbook_slug!r} applies to {account.name}.")
        from ..runbooks import runbooks_for

        if runbook is None and runbooks_for(account.name):
            raise BreakglassRefused("runbook_required", "Pick the runbook you will follow.")
    return incident_ref, reason, runbook


def _clear_pending(row: SealedAccount, *, emergency: bool, actor: str) -> None:
    """A pending checkout past its time, or one an emergency supersedes, stops blocking the account (locked)."""
    live = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").filter(
        account=row, state=CheckoutState.PENDING).first()
    if live is None:
        return
    if live.pending_until and live.pending_until <= timezone.now():
        end_unused(live, state=CheckoutState.EXPIRED, actor="system:breakglass", reason="not approved in time")
    elif emergency:
        end_unused(live, state=CheckoutState.CANCELLED, actor=actor, reason="superseded by an emergency checkout")
        tell_holder(live, f"Superseded: checkout #{live.pk} of {row.name}",
                     f"{actor} checked {row.name} out in emergency mode; your pending request is cancelled.",
                     "breakglass.checkout_superseded")
    else:
        return
    row.refresh_from_db()


def _open_checkout(account: SealedAccount, *, emergency: bool = False, **fields) -> Checkout:
    """Create a live checkout of ``account`` (locked), or refuse: one holder at a time."""
    row = SealedAccount.objects.select_for_update().get(pk=account.pk)
    if row.state == AccountState.CHECKED_OUT:
        _clear_pending(row, emergency=emergency, actor=fields["holder"].get_username())
    if row.state != AccountState.SEALED:
        raise BreakglassRefused("account_busy", {
            AccountState.CHECKED_OUT: f"{row.name} is checked out already: one holder at a time. Use another account.",
            AccountState.ROTATING: f"{row.name} is being rotated after its last checkout; try again in a moment.",
            AccountState.EXPOSED: f"{row.name} is exposed (its last rotation failed) and cannot be checked out until it is fixed.",
            AccountState.ENROLLING: f"{row.name} is not sealed yet.",
        }.get(row.state, f"{row.name} is {row.state}."))
    try:
        with transaction.atomic():  # a savepoint: the constraint's refusal must not poison the caller's transaction
            checkout = Checkout.objects.create(account=row, seal_id=row.seal_id, **fields)
    except IntegrityError as e:
        raise BreakglassRefused("account_busy", f"{row.name} is checked out already: one holder at a time.") from e
    row.state = AccountState.CHECKED_OUT
    row.save(update_fields=["state", "updated_at"])
    checkout.account = row
    return checkout


def checkout_request(*, account: SealedAccount, requester, incident_ref: str, reason: str, runbook_slug: str = "",
                     duration_minutes: int, emergency: bool = False, mfa: MfaStep | None = None) -> Checkout:
    """A responder asks for ``account``: dual control by default, or emergency (alone, everyone alerted).

    ``mfa`` is the verified step it was asked with, recorded on the row and in the audit.
    """
    if not is_responder(user=requester, account=account):
        raise BreakglassRefused("not_responder", f"You are not a responder for {account.name}.")
    if emergency and not account.emergency_allowed:
        raise BreakglassRefused("emergency_not_allowed", f"{account.name} cannot be checked out in emergency mode.")
    incident_ref, reason, runbook = _validated(account, incident_ref=incident_ref, reason=reason,
                                               runbook_slug=runbook_slug, duration_minutes=duration_minutes,
                                               purpose=Checkout.Purpose.USE)
    now = timezone.now()
    who = requester.get_username()
    with transaction.atomic():
        checkout = _open_checkout(
            account, emergency=emergency, holder=requester, purpose=Checkout.Purpose.USE,
            mode=Checkout.Mode.EMERGENCY if emergency else Checkout.Mode.DUAL,
            incident_ref=incident_ref, reason=reason, duration_minutes=duration_minutes,
            runbook_slug=runbook.slug if runbook else "", runbook_title=runbook.title if runbook else "",
            runbook_digest=runbook.digest if runbook else "",
            approvals_required=0 if emergency else account.approvals_required,
            requested_at=now, pending_until=now + timedelta(minutes=settings.JITAD_BREAKGLASS_PENDING_MINUTES),
            **mfa_step_fields(mfa),
        )
        audit_record_many([checkout_entry(checkout, actor=who, action="breakglass.checkout_requested", after=CheckoutState.PENDING,
                                          reason=reason, runbook=checkout.runbook_slug, minutes=duration_minutes,
                                          seal_id=checkout.seal_id, **mfa_step_audit(mfa))])
        if emergency:
            _emergency_alerts(checkout)
            _approve(checkout, actor=who)
        else:
            _ask_approvers(checkout)
    return checkout


def envelope_request(*, account: SealedAccount, requester, incident_ref: str, reason: str,
                     mfa: MfaStep | None = None) -> Checkout:
    """Ask to print the sealed-envelope sheet of ``account``'s current password (always dual control)."""
    if not (is_responder(user=requester, account=account) or requester.is_superuser):
        raise BreakglassRefused("not_responder", f"You are not a responder for {account.name}.")
    if account.disable_when_sealed:
        raise BreakglassRefused("envelope_useless",
                                f"{account.name} is disabled while sealed: the password on an envelope would not log "
                                "on when the portal is down. Envelopes are for accounts kept enabled.")
    incident_ref, reason, _ = _validated(account, incident_ref=incident_ref, reason=reason, runbook_slug="",
                                         duration_minutes=0, purpose=Checkout.Purpose.ENVELOPE)
    now = timezone.now()
    with transaction.atomic():
        checkout = _open_checkout(
            account, holder=requester, purpose=Checkout.Purpose.ENVELOPE, mode=Checkout.Mode.DUAL,
            incident_ref=incident_ref, reason=reason, duration_minutes=settings.JITAD_BREAKGLASS_ENVELOPE_MINUTES,
            approvals_required=max(2, account.approvals_required), requested_at=now,
            pending_until=now + timedelta(minutes=settings.JITAD_BREAKGLASS_PENDING_MINUTES), **mfa_step_fields(mfa),
        )
        audit_record_many([checkout_entry(checkout, actor=requester.get_username(), action="breakglass.envelope_requested",
                                          after=CheckoutState.PENDING, reason=reason, seal_id=checkout.seal_id,
                                          **mfa_step_audit(mfa))])
        _ask_approvers(checkout)
    return checkout


def _ask_approvers(checkout: Checkout) -> None:
    account = checkout.account
    what = "print a sealed envelope of" if checkout.purpose == Checkout.Purpose.ENVELOPE else "check out"
    notification_create(
        event="breakglass.checkout_pending", severity=Notification.Severity.WARNING,
        subject=f"Decide: {checkout.holder.get_username()} asks to {what} break-glass account {account.name} "
                f"(checkout #{checkout.pk})",
        body=(f"{who(checkout.holder)} asks to {what} {account.name} for incident {checkout.incident_ref}.\n"
              f"Reason: {checkout.reason}\nIt needs {checkout.approvals_required} approvers, neither of them the "
              "requester."),
        link=admin_link("checkout", checkout.pk), object_type="checkout", object_id=checkout.pk,
        people=account_approvers(account=account, exclude=checkout.holder),
    )


def _emergency_alerts(checkout: Checkout) -> None:
    account = checkout.account
    subject = (f"EMERGENCY break-glass checkout: {checkout.holder.get_username()} took {account.name} "
               f"(incident {checkout.incident_ref})")
    body = (f"{who(checkout.holder)} checked out {account.name} alone, in emergency mode, for "
            f"{checkout.duration_minutes} minutes.\nIncident: {checkout.incident_ref}\nReason: {checkout.reason}\n"
            "A post-incident review is mandatory. An approver may force the check-in at once if this is not right.")
    link = admin_link("checkout", checkout.pk)
    alert_raise(event="breakglass.emergency", severity=Notification.Severity.CRITICAL, subject=subject, body=body,
                link=link, object_type="checkout", object_id=checkout.pk)
    notification_create(event="breakglass.emergency", severity=Notification.Severity.CRITICAL, subject=subject,
                        body=body, link=link, object_type="checkout", object_id=checkout.pk,
                        people=account_approvers(account=checkout.account, exclude=checkout.holder))


# -- deciding --------------------------------------------------------------------------------
def _approve(checkout: Checkout, *, actor: str) -> None:
    """Enough approvals (or emergency): open the window (caller's transaction, checkout locked)."""
    now = timezone.now()
    checkout.decided_at = now
    checkout.expires_at = now + timedelta(minutes=checkout.duration_minutes)
    needs_enabling = checkout.purpose == Checkout.Purpose.USE and checkout.account.disable_when_sealed
    token = uuid.uuid4() if needs_enabling else None
    if needs_enabling:
        checkout.state, checkout.claim_token, checkout.lease_until = CheckoutState.OPENING, token, lease(now)
    else:
        checkout.state, checkout.opened_at = CheckoutState.OPEN, now
    checkout.save(update_fields=["decided_at", "expires_at", "state", "claim_token", "lease_until", "opened_at"])
    emergency = checkout.mode == Checkout.Mode.EMERGENCY
    audit_record_many([checkout_entry(checkout, actor=actor,
                                      action="breakglass.checkout_emergency" if emergency else "breakglass.checkout_approved",
                                      before=CheckoutState.PENDING, after=checkout.state, expires_at=checkout.expires_at.isoformat())])
    if needs_enabling:
        transaction.on_commit(lambda: enqueue_open(checkout.pk, token))
    if not emergency:
        what = "print the envelope of" if checkout.purpose == Checkout.Purpose.ENVELOPE else "use"
        tell_holder(checkout, f"Approved: you may {what} {checkout.account.name} (checkout #{checkout.pk})",
                     f"Your checkout of {checkout.account.name} is approved until "
                     f"{when(checkout.expires_at)}. Open it in jitad to see the password (once).",
                     "breakglass.checkout_approved")


def checkout_approve(*, checkout: Checkout, approver, comment: str = "", mfa: MfaStep | None = None) -> Checkout:
    """One approver agrees; at the required number of distinct approvers the checkout opens."""
    with transaction.atomic():
        row = locked_pending(checkout)
        if approver.pk == row.holder_id:
            raise BreakglassRefused("own_checkout", "Nobody approves their own checkout: two other people must.")
        if not can_decide_checkout(user=approver, checkout=row):
            raise BreakglassRefused("not_approver", f"You are not an approver for {row.account.name}.")
        if row.approvals.filter(approver=approver).exists():
            raise BreakglassRefused("already_decided", "You have already approved this checkout; another approver must.")
        CheckoutApproval.objects.create(checkout=row, approver=approver, decision=CheckoutApproval.Decision.APPROVE,
                                        comment=(comment or "").strip()[:2000], **mfa_step_fields(mfa))
        count = row.approvals.filter(decision=CheckoutApproval.Decision.APPROVE).count()
        audit_record_many([checkout_entry(row, actor=approver.get_username(), action="breakglass.checkout_approval",
                                          before=CheckoutState.PENDING, after=CheckoutState.PENDING, reason=comment or "",
                                          approvals=count, required=row.approvals_required, **mfa_step_audit(mfa))])
        if count >= row.approvals_required:
            _approve(row, actor=approver.get_username())
    return row


def checkout_deny(*, checkout: Checkout, approver, comment: str, mfa: MfaStep | None = None) -> Checkout:
    """One approver refuses: the checkout ends and the account stays sealed."""
    comment = (comment or "").strip()
    if not comment:
        raise BreakglassRefused("comment_required", "Say why you deny it: the requester sees this comment.")
    with transaction.atomic():
        row = locked_pending(checkout)
        if approver.pk == row.holder_id or not can_decide_checkout(user=approver, checkout=row):
            raise BreakglassRefused("not_approver", f"You may not decide checkouts of {row.account.name}.")
        if row.approvals.filter(approver=approver).exists():
            raise BreakglassRefused("already_decided", "You have already decided this checkout.")
        CheckoutApproval.objects.create(checkout=row, approver=approver, decision=CheckoutApproval.Decision.DENY,
                                        comment=comment[:2000], **mfa_step_fields(mfa))
        end_unused(row, state=CheckoutState.DENIED, actor=approver.get_username(), reason=comment)
        tell_holder(row, f"Denied: checkout #{row.pk} of {row.account.name}",
                     f"{who(approver)} denied your checkout of {row.account.name}: {comment}", "breakglass.checkout_denied")
    return row


def checkout_cancel(*, checkout: Checkout, actor) -> Checkout:
    """The requester withdraws a checkout nobody approved yet."""
    with transaction.atomic():
        row = locked_pending(checkout)
        if actor.pk != row.holder_id:
            raise BreakglassRefused("not_holder", "Only the requester may cancel a checkout.")
        end_unused(row, state=CheckoutState.CANCELLED, actor=actor.get_username(), reason="cancelled by the requester")
    return row


def checkouts_expire_pending(*, now: datetime | None = None) -> int:
    """Checkouts nobody approved in time end; the account stays sealed."""
    now = now or timezone.now()
    ended = 0
    for pk in Checkout.objects.filter(state=CheckoutState.PENDING, pending_until__lte=now).values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            row = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").get(pk=pk)
            if row.state != CheckoutState.PENDING:
                continue
            end_unused(row, state=CheckoutState.EXPIRED, actor="system:breakglass", reason="not approved in time")
            tell_holder(row, f"Expired: checkout #{row.pk} of {row.account.name}",
                         f"Your checkout of {row.account.name} was not approved within "
                         f"{settings.JITAD_BREAKGLASS_PENDING_MINUTES} minutes.", "breakglass.checkout_expired")
            ended += 1
    return ended
