"""Checkouts: ask, approve (two people) or emergency, open (enable in AD), reveal once, check in.

The portal and the admin enforce a fresh OTP for every step here (jitad.accounts.middleware),
and the views for asking and revealing demand a code in that very request. These services
enforce who may do what, the lifecycle, and exclusivity: one live checkout per account,
by a row lock on the account and a partial unique constraint behind it.
"""
import logging
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from jitad import directory
from jitad.audit.services import audit_record_many
from jitad.engine import claims, keeper
from jitad.humantime import when
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise, notification_create

from ..errors import BreakglassRefused
from ..models import Checkout, CheckoutApproval, Review, Seal, SealedAccount
from ..runbooks import runbook_get
from ..vault import secret_open
from .access import account_approvers, can_decide_checkout, can_force_checkin, is_responder
from .accounts import rotation_start
from .common import admin_link, checkout_entry, end_unused, enqueue, lease, portal_link, release, take

log = logging.getLogger(__name__)
AccountState = SealedAccount.State
CheckoutState = Checkout.State
INCIDENT_MAX = 64
REASON_MAX = 4000


def _enqueue_open(checkout_id: int, token: uuid.UUID) -> None:
    enqueue("jitad.breakglass.checkout_open", Checkout, checkout_id, token)


def _who(user) -> str:
    full = user.get_full_name()
    return f"{full} ({user.get_username()})" if full else user.get_username()


def _tell_holder(checkout: Checkout, subject: str, body: str, event: str) -> None:
    notification_create(event=event, subject=subject, body=body, link=portal_link("breakglass:checkout", checkout.pk),
                        object_type="checkout", object_id=checkout.pk, people=[checkout.holder])


# -- asking ----------------------------------------------------------------------------------
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
        _tell_holder(live, f"Superseded: checkout #{live.pk} of {row.name}",
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
                     duration_minutes: int, emergency: bool = False) -> Checkout:
    """A responder asks for ``account``: dual control by default, or emergency (alone, everyone alerted)."""
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
        )
        audit_record_many([checkout_entry(checkout, actor=who, action="breakglass.checkout_requested", after=CheckoutState.PENDING,
                                          reason=reason, runbook=checkout.runbook_slug, minutes=duration_minutes,
                                          seal_id=checkout.seal_id)])
        if emergency:
            _emergency_alerts(checkout)
            _approve(checkout, actor=who)
        else:
            _ask_approvers(checkout)
    return checkout


def envelope_request(*, account: SealedAccount, requester, incident_ref: str, reason: str) -> Checkout:
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
            pending_until=now + timedelta(minutes=settings.JITAD_BREAKGLASS_PENDING_MINUTES),
        )
        audit_record_many([checkout_entry(checkout, actor=requester.get_username(), action="breakglass.envelope_requested",
                                          after=CheckoutState.PENDING, reason=reason, seal_id=checkout.seal_id)])
        _ask_approvers(checkout)
    return checkout


def _ask_approvers(checkout: Checkout) -> None:
    account = checkout.account
    what = "print a sealed envelope of" if checkout.purpose == Checkout.Purpose.ENVELOPE else "check out"
    notification_create(
        event="breakglass.checkout_pending", severity=Notification.Severity.WARNING,
        subject=f"Decide: {checkout.holder.get_username()} asks to {what} break-glass account {account.name} "
                f"(checkout #{checkout.pk})",
        body=(f"{_who(checkout.holder)} asks to {what} {account.name} for incident {checkout.incident_ref}.\n"
              f"Reason: {checkout.reason}\nIt needs {checkout.approvals_required} approvers, neither of them the "
              "requester."),
        link=admin_link("checkout", checkout.pk), object_type="checkout", object_id=checkout.pk,
        people=account_approvers(account=account, exclude=checkout.holder),
    )


def _emergency_alerts(checkout: Checkout) -> None:
    account = checkout.account
    subject = (f"EMERGENCY break-glass checkout: {checkout.holder.get_username()} took {account.name} "
               f"(incident {checkout.incident_ref})")
    body = (f"{_who(checkout.holder)} checked out {account.name} alone, in emergency mode, for "
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
        transaction.on_commit(lambda: _enqueue_open(checkout.pk, token))
    if not emergency:
        what = "print the envelope of" if checkout.purpose == Checkout.Purpose.ENVELOPE else "use"
        _tell_holder(checkout, f"Approved: you may {what} {checkout.account.name} (checkout #{checkout.pk})",
                     f"Your checkout of {checkout.account.name} is approved until "
                     f"{when(checkout.expires_at)}. Open it in jitad to see the password (once).",
                     "breakglass.checkout_approved")


def _locked_pending(checkout: Checkout) -> Checkout:
    row = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").get(pk=checkout.pk)
    if row.state != CheckoutState.PENDING:
        raise BreakglassRefused("not_pending", f"Checkout #{row.pk} is {row.get_state_display()}, not waiting for a decision.")
    return row


def checkout_approve(*, checkout: Checkout, approver, comment: str = "") -> Checkout:
    """One approver agrees; at the required number of distinct approvers the checkout opens."""
    with transaction.atomic():
        row = _locked_pending(checkout)
        if approver.pk == row.holder_id:
            raise BreakglassRefused("own_checkout", "Nobody approves their own checkout: two other people must.")
        if not can_decide_checkout(user=approver, checkout=row):
            raise BreakglassRefused("not_approver", f"You are not an approver for {row.account.name}.")
        if row.approvals.filter(approver=approver).exists():
            raise BreakglassRefused("already_decided", "You have already approved this checkout; another approver must.")
        CheckoutApproval.objects.create(checkout=row, approver=approver, decision=CheckoutApproval.Decision.APPROVE,
                                        comment=(comment or "").strip()[:2000])
        count = row.approvals.filter(decision=CheckoutApproval.Decision.APPROVE).count()
        audit_record_many([checkout_entry(row, actor=approver.get_username(), action="breakglass.checkout_approval",
                                          before=CheckoutState.PENDING, after=CheckoutState.PENDING, reason=comment or "",
                                          approvals=count, required=row.approvals_required)])
        if count >= row.approvals_required:
            _approve(row, actor=approver.get_username())
    return row


def checkout_deny(*, checkout: Checkout, approver, comment: str) -> Checkout:
    """One approver refuses: the checkout ends and the account stays sealed."""
    comment = (comment or "").strip()
    if not comment:
        raise BreakglassRefused("comment_required", "Say why you deny it: the requester sees this comment.")
    with transaction.atomic():
        row = _locked_pending(checkout)
        if approver.pk == row.holder_id or not can_decide_checkout(user=approver, checkout=row):
            raise BreakglassRefused("not_approver", f"You may not decide checkouts of {row.account.name}.")
        if row.approvals.filter(approver=approver).exists():
            raise BreakglassRefused("already_decided", "You have already decided this checkout.")
        CheckoutApproval.objects.create(checkout=row, approver=approver, decision=CheckoutApproval.Decision.DENY,
                                        comment=comment[:2000])
        end_unused(row, state=CheckoutState.DENIED, actor=approver.get_username(), reason=comment)
        _tell_holder(row, f"Denied: checkout #{row.pk} of {row.account.name}",
                     f"{_who(approver)} denied your checkout of {row.account.name}: {comment}", "breakglass.checkout_denied")
    return row


def checkout_cancel(*, checkout: Checkout, actor) -> Checkout:
    """The requester withdraws a checkout nobody approved yet."""
    with transaction.atomic():
        row = _locked_pending(checkout)
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
            _tell_holder(row, f"Expired: checkout #{row.pk} of {row.account.name}",
                         f"Your checkout of {row.account.name} was not approved within "
                         f"{settings.JITAD_BREAKGLASS_PENDING_MINUTES} minutes.", "breakglass.checkout_expired")
            ended += 1
    return ended


# -- opening (enable in AD) ----------------------------------------------------------------
def checkout_open_execute(*, checkout_id: int, token) -> None:
    """The worker enables the account for an approved checkout; failures retry with backoff, alerted."""
    checkout, mine = take(Checkout, checkout_id, token)
    if checkout is None:
        return
    with keeper.held(Checkout, mine):
        _open_taken(checkout, mine)


def _open_taken(checkout: Checkout, mine) -> None:
    if checkout.state != CheckoutState.OPENING:
        release(Checkout, checkout.pk, mine)
        return
    account = checkout.account
    try:
        with directory.session() as d:
            dn = d.find_user_by_guid(account.user_guid).dn if account.user_guid else account.user_dn
            d.set_enabled(dn, True)
    except directory.DirectoryError as e:
        _open_failed(checkout, mine, e)
        return
    except Exception as e:  # a bug must be recorded, retried and alerted too, never a silent crash loop
        log.exception("checkout %s: unexpected error while enabling the account", checkout.pk)
        _open_failed(checkout, mine, directory.unexpected(e))
        return
    now = timezone.now()
    with transaction.atomic():
        row = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").filter(
            pk=checkout.pk, claim_token=mine).first()
        if row is None or row.state != CheckoutState.OPENING:
            return  # checked in meanwhile: the rotation that follows disables it again
        row.state, row.opened_at, row.claim_token, row.lease_until = CheckoutState.OPEN, now, None, None
        row.attempts, row.next_attempt_at, row.last_error = 0, None, ""
        row.save(update_fields=["state", "opened_at", "claim_token", "lease_until", "attempts", "next_attempt_at",
                                "last_error"])
        audit_record_many([checkout_entry(row, actor="system:breakglass", action="breakglass.checkout_opened",
                                          before=CheckoutState.OPENING, after=CheckoutState.OPEN, enabled=True)])


def _open_failed(checkout: Checkout, token: uuid.UUID, error: directory.DirectoryError) -> None:
    """Record a failed opening through the engine's one "attempt failed" routine.

    An opening never gives up while its window lasts (the check-in ends it): every failure,
    transient or not, waits the ordinary backoff step, and the security channel is alerted
    once, when the attempts reach JITAD_RETRY_MAX_ATTEMPTS.
    """
    def report(failures: list[claims.Failed]) -> None:
        for failure in failures:
            row = failure.row
            audit_record_many([checkout_entry(row, actor="system:breakglass", action="breakglass.open_failed",
                                              before=CheckoutState.OPENING, after=CheckoutState.OPENING,
                                              reason=row.last_error, attempts=row.attempts)])
            if row.attempts == settings.JITAD_RETRY_MAX_ATTEMPTS:
                alert_raise(
                    event="breakglass.open_failed", severity=Notification.Severity.CRITICAL,
                    subject=f"Break-glass account {row.account.name} cannot be enabled for checkout #{row.pk}",
                    body=f"{_who(row.holder)} holds an approved checkout but the account is still disabled: "
                         f"{row.last_error}\njitad keeps retrying until the window ends.",
                    link=admin_link("checkout", row.pk), object_type="checkout", object_id=row.pk,
                )

    claims.attempt_failed(Checkout.objects.select_related("account", "holder"), [checkout.pk], token,
                          error=f"{type(error).__name__}: {error}", max_attempts=sys.maxsize, report=report)


# -- the password ----------------------------------------------------------------------------
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


# -- check-in --------------------------------------------------------------------------------
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
            _tell_holder(row, f"Checked in: {row.account.name} (checkout #{row.pk})",
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
                    end_unused(_locked_pending(checkout), state=CheckoutState.CANCELLED, actor=actor, reason=reason)
            else:
                _checkin(checkout, kind=Checkout.CheckinKind.FORCED, actor=actor, reason=reason)
            ended += 1
        except BreakglassRefused:  # moved on meanwhile
            pass
    return ended


def checkouts_end_for_blocked(sender, *, user, actor: str, reason: str, **kwargs) -> dict[str, int]:
    """Receiver of accounts' ``account_blocked``: the person's break-glass checkouts end now."""
    return {"checkouts_ended": checkouts_end_for_user(user=user, actor=actor, reason=reason)}
