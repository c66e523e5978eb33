"""Sealed accounts: enrol, rotate the password (set, verify, disable, seal).

Which accounts may be sealed is sealable.py's; broken seals and their check against AD are seals.py's.

Rotation follows the engine's rules (ARCHITECTURE.md): claim the account in a short
transaction, call AD outside any transaction, commit the outcome only while still holding
the claim. A failed rotation leaves the account *exposed* (someone may know a live
password): alerted at once, retried with backoff for as long as it takes, and a
"Resolved" alert when a rotation finally succeeds.
"""
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from jitad import directory
from jitad.audit.services import audit_record_many
from jitad.engine import claims, keeper
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..errors import BreakglassRefused
from ..models import ACCOUNT_NAME_PATTERN, Checkout, Seal, SealedAccount
from ..vault import VaultError, password_generate, seal_id_generate, secret_open, secret_seal
from .common import account_entry, admin_link, checkout_entry, enqueue_rotate, lease, release, take
from .sealable import account_sealable_check

log = logging.getLogger(__name__)
AccountState = SealedAccount.State


# -- enrolment and settings -----------------------------------------------------------------
def account_enrol(*, account: SealedAccount, actor: str) -> SealedAccount:
    """Save a new sealed account as *enrolling* and queue its first rotation (nobody knows the result)."""
    import re

    account.name = (account.name or "").strip()
    if not re.match(ACCOUNT_NAME_PATTERN, account.name):
        raise BreakglassRefused("name_invalid", "An account name is an AD sAMAccountName: 1 to 20 characters.")
    if SealedAccount.objects.filter(name__iexact=account.name).exists():
        raise BreakglassRefused("already_enrolled", f"{account.name} is already a sealed account.")
    now = timezone.now()
    token = uuid.uuid4()
    with transaction.atomic():
        account.state = AccountState.ENROLLING
        account.enrolled_at, account.enrolled_by = now, actor
        account.rotation_reason = Seal.Reason.ENROLLED
        account.claim_token, account.lease_until = token, lease(now)
        account.save()
        audit_record_many([account_entry(account, actor=actor, action="breakglass.account_enrolled", after=AccountState.ENROLLING,
                                         disable_when_sealed=account.disable_when_sealed,
                                         approvals_required=account.approvals_required,
                                         responder_groups=account.responder_groups,
                                         approver_groups=account.approver_groups)])
        transaction.on_commit(lambda: enqueue_rotate(account.pk, token))
    return account


def account_update(*, account: SealedAccount, actor: str, changed: dict) -> None:
    """Record a change of an account's settings (approvers, responders, limits) in the audit trail."""
    if changed:
        audit_record_many([account_entry(account, actor=actor, action="breakglass.account_updated",
                                         before=account.state, after=account.state, changes=changed)])
        alert_raise(
            event="breakglass.account_updated", severity=Notification.Severity.WARNING,
            subject=f"Break-glass account {account.name} changed by {actor}",
            body="Changed: " + "; ".join(f"{k} = {v}" for k, v in changed.items()),
            link=admin_link("sealedaccount", account.pk), object_type="sealed_account", object_id=account.pk,
        )


# -- rotation --------------------------------------------------------------------------------
def rotation_start(*, account: SealedAccount, reason: str, actor: str, detail: str = "") -> uuid.UUID:
    """Ask for a new password now (caller's transaction, account row locked); the worker sets it."""
    token = uuid.uuid4()
    before = account.state
    if account.state != AccountState.EXPOSED:  # an exposed account stays shown as exposed until a rotation succeeds
        account.state = AccountState.ROTATING if account.state != AccountState.ENROLLING else AccountState.ENROLLING
    account.rotation_reason = reason
    account.attempts, account.next_attempt_at = 0, None
    account.claim_token, account.lease_until = token, lease()
    account.save(update_fields=["state", "rotation_reason", "attempts", "next_attempt_at", "claim_token",
                                "lease_until", "updated_at"])
    audit_record_many([account_entry(account, actor=actor, action="breakglass.rotation_requested", before=before,
                                     after=account.state, reason=detail or reason)])
    transaction.on_commit(lambda: enqueue_rotate(account.pk, token))
    return token


def account_rotate(*, account: SealedAccount, actor: str, reason: str) -> SealedAccount:
    """An operator asks for a new password now (a sealed account), or an immediate retry (an exposed one)."""
    reason = (reason or "").strip()
    if not reason:
        raise BreakglassRefused("reason_required", "Say why the password must change now.")
    with transaction.atomic():
        row = SealedAccount.objects.select_for_update().get(pk=account.pk)
        if row.state == AccountState.SEALED:
            rotation_start(account=row, reason=Seal.Reason.MANUAL, actor=actor, detail=reason)
        elif row.state in (AccountState.EXPOSED, AccountState.ROTATING, AccountState.ENROLLING) and not (
                row.lease_until and row.lease_until > timezone.now()):
            row.next_attempt_at = None
            row.save(update_fields=["next_attempt_at", "updated_at"])
            audit_record_many([account_entry(row, actor=actor, action="breakglass.rotation_retry", before=row.state,
                                             after=row.state, reason=reason)])
        elif row.state == AccountState.CHECKED_OUT:
            raise BreakglassRefused("checked_out", f"{row.name} is checked out: check it in, which rotates it.")
        else:
            raise BreakglassRefused("busy", f"A rotation of {row.name} is running now.")
    return row


@dataclass
class _Rotated:
    secret: str
    facts: directory.AccountFacts


def _open_quietly(account: SealedAccount, token: str, what: str) -> str:
    """An earlier password, for the check that it is dead; one that no longer opens only skips that check."""
    if not token:
        return ""
    try:
        return secret_open(ref=account.vault_ref, token=token)
    except VaultError as e:
        log.warning("sealed account %s: the %s password cannot be opened (%s); not checking it is dead",
                    account.name, what, e)
        return ""


@sensitive_variables("old", "leftover", "new", "stale", "interim")
def _rotate_in_ad(account: SealedAccount, token: uuid.UUID) -> _Rotated:
    """Set a new random password, prove it (new binds, old ones do not), disable if sealed so; no DB lock held.

    After a checkout the account is disabled first, so a rotation that fails half-way never
    leaves the holder's password working on an enabled account. The password is reset twice:
    a DC that still accepts the previous password for a while (NTLM's OldPasswordAllowedPeriod)
    then accepts only one nobody has seen.
    """
    ref = account.vault_ref
    old = _open_quietly(account, account.secret, "current")
    leftover = _open_quietly(account, account.pending_secret, "pending")
    with directory.session() as d:
        user = d.find_user_by_guid(account.user_guid) if account.user_guid else d.find_user(account.name)
        if account.state == AccountState.ENROLLING:
            account_sealable_check(user, d, account)
        elif account.disable_when_sealed:
            d.set_enabled(user.dn, False)
        new = password_generate(avoid=user.sam_account_name)
        sealed_new = secret_seal(ref=ref, password=new)
        # The new password's token is stored before AD has it: a worker killed between the
        # two leaves a record, and the next attempt checks that this password is dead too.
        kept = SealedAccount.objects.filter(pk=account.pk, claim_token=token).update(
            pending_secret=sealed_new, user_dn=user.dn, user_guid=user.guid, user_sid=user.sid, lease_until=lease())
        if not kept:
            raise directory.DirectoryUnavailable("the claim on this account lapsed before the password was set")
        if account.state != AccountState.ENROLLING:
            interim = password_generate(avoid=user.sam_account_name)
            d.set_password(user.dn, interim)
        d.set_password(user.dn, new)
        d.password_never_expires(user.dn)  # a password sealed for a year must still work on the day
        if d.account_locked(user.dn):
            d.unlock(user.dn)
        on_this_dc = dataclasses.replace(d.config, urls=(d.url,))  # the DC that took the reset: no replication lag
    if not SealedAccount.objects.filter(pk=account.pk, claim_token=token).update(lease_until=lease()):
        raise directory.DirectoryUnavailable("the claim on this account lapsed while the password was set")
    if not directory.password_works(user.dn, new, on_this_dc):
        raise directory.DirectoryRejected("the new password does not bind after the reset")
    for stale in {old, leftover} - {"", new}:
        if directory.password_works(user.dn, stale, on_this_dc):
            raise directory.DirectoryRejected(
                "a previous password still binds after the reset (does the DC allow old passwords for a while?)")
    with directory.session() as d:
        if account.disable_when_sealed:
            d.set_enabled(user.dn, False)
        facts = d.account_facts(user.dn)
    return _Rotated(secret=sealed_new, facts=facts)


def account_rotate_execute(*, account_id: int, token) -> None:
    """The worker's half of a rotation: set and verify the password in AD, then seal (or record the failure)."""
    account, mine = take(SealedAccount, account_id, token)
    if account is None:
        return
    with keeper.held(SealedAccount, mine):  # a slow DC must not let a second worker in mid-rotation
        _rotate_taken(account, mine)


def _rotate_taken(account: SealedAccount, mine) -> None:
    if account.state not in (AccountState.ENROLLING, AccountState.ROTATING, AccountState.EXPOSED):
        release(SealedAccount, account.pk, mine)
        return
    try:
        rotated = _rotate_in_ad(account, mine)
    except directory.DirectoryError as e:
        _rotation_failed(account, mine, e)
        return
    except VaultError as e:
        _rotation_failed(account, mine, directory.DirectoryMisconfigured(str(e)))
        return
    except Exception as e:  # a bug must be loud and retried too, never a silent crash loop
        log.exception("sealed account %s: unexpected error while rotating", account.pk)
        _rotation_failed(account, mine, directory.unexpected(e))
        return
    _sealed(account, mine, rotated)


def account_rotate_here(*, account: SealedAccount, token, wait_seconds: float = 120) -> SealedAccount:
    """Rotate in this process (for commands: the worker may be the very thing that is down).

    A worker that is up may have taken the claim first: then wait for its outcome.
    """
    account_rotate_execute(account_id=account.pk, token=token)
    deadline = time.monotonic() + wait_seconds
    while True:
        account.refresh_from_db()
        if account.state not in (AccountState.ROTATING, AccountState.ENROLLING) or time.monotonic() > deadline:
            return account
        time.sleep(0.5)


def _sealed(account: SealedAccount, token: uuid.UUID, rotated: _Rotated) -> None:
    now = timezone.now()
    with transaction.atomic():
        row = SealedAccount.objects.select_for_update().filter(pk=account.pk, claim_token=token).first()
        if row is None:
            log.warning("sealed account %s: claim lapsed while rotating; the current holder rotates again", account.pk)
            return
        before, reason = row.state, row.rotation_reason or Seal.Reason.MANUAL
        broken = list(Seal.objects.filter(account=row, broken_at__isnull=True).values_list("seal_id", flat=True))
        Seal.objects.filter(account=row, broken_at__isnull=True).update(broken_at=now, broken_reason=reason)
        seal = Seal.objects.create(account=row, seal_id=seal_id_generate(), reason=reason, created_at=now)
        row.secret, row.pending_secret = rotated.secret, ""
        row.seal_id, row.sealed_at, row.pwd_last_set = seal.seal_id, now, rotated.facts.pwd_last_set
        row.state, row.exposed_since, row.rotation_reason = AccountState.SEALED, None, ""
        row.attempts, row.next_attempt_at, row.last_error = 0, None, ""
        row.claim_token = row.lease_until = None
        row.save()
        returned = list(Checkout.objects.select_related("holder", "account").filter(account=row, state=Checkout.State.RETURNING))
        Checkout.objects.filter(pk__in=[c.pk for c in returned]).update(state=Checkout.State.CLOSED, closed_at=now)
        entries = [account_entry(row, actor="system:breakglass", action="breakglass.sealed", before=before,
                                 after=AccountState.SEALED, reason=reason, seal_id=seal.seal_id, broken_seals=broken,
                                 enabled=rotated.facts.enabled)]
        entries += [checkout_entry(c, actor="system:breakglass", action="breakglass.checkout_closed",
                                   before=Checkout.State.RETURNING, after=Checkout.State.CLOSED, seal_id=seal.seal_id)
                    for c in returned]
        audit_record_many(entries)
        if before == AccountState.EXPOSED:
            alert_raise(
                event="breakglass.resealed", severity=Notification.Severity.INFO,
                subject=f"Resolved: break-glass account {row.name} is sealed again",
                body=f"{row.name} has a new password only jitad knows (seal {seal.seal_id}); the one that was "
                     "exposed no longer works.",
                link=admin_link("sealedaccount", row.pk), object_type="sealed_account", object_id=row.pk,
            )
    log.info("sealed account %s sealed (%s)", account.name, reason)


def _rotation_failed(account: SealedAccount, token: uuid.UUID, error: directory.DirectoryError) -> None:
    """Record a failed rotation through the engine's one "attempt failed" routine.

    A rotation gives up on nothing: every failure is retried (the longest wait once the attempts
    reach JITAD_RETRY_MAX_ATTEMPTS). A rotating account becomes *exposed* (alerted once, when it
    becomes so); an enrolment that reaches the limit is alerted once.
    """
    message = f"{type(error).__name__}: {error}"[:claims.ERROR_MAX]

    def mark(row: SealedAccount, exhausted: bool, now) -> list[str]:
        if row.state in (AccountState.ROTATING, AccountState.EXPOSED):
            row.state = AccountState.EXPOSED
            row.exposed_since = row.exposed_since or now
        return ["state", "exposed_since"]

    def report(failures: list[claims.Failed]) -> None:
        for failure in failures:
            row, before = failure.row, failure.before
            audit_record_many([account_entry(row, actor="system:breakglass", action="breakglass.rotation_failed",
                                             before=before, after=row.state, reason=row.last_error,
                                             attempts=row.attempts, transient=error.transient)])
            if row.state == AccountState.EXPOSED and before != AccountState.EXPOSED:
                alert_raise(
                    event="breakglass.exposed", severity=Notification.Severity.CRITICAL,
                    subject=f"Break-glass account {row.name} is EXPOSED: its password could not be rotated",
                    body=(f"Rotating the password of {row.name} failed: {row.last_error}\nSomeone may still know a "
                          "password that works. jitad keeps retrying with backoff; check the domain controllers and "
                          "jitad's bind account, or disable the account in AD by hand."),
                    link=admin_link("sealedaccount", row.pk), object_type="sealed_account", object_id=row.pk,
                )
            elif row.state == AccountState.ENROLLING and row.attempts == settings.JITAD_RETRY_MAX_ATTEMPTS:
                alert_raise(
                    event="breakglass.enrol_failed", severity=Notification.Severity.CRITICAL,
                    subject=f"Break-glass account {row.name} could not be sealed",
                    body=f"Setting the first password of {row.name} failed {row.attempts} times: {row.last_error}\n"
                         "Whoever created the account may still know its password. jitad keeps retrying.",
                    link=admin_link("sealedaccount", row.pk), object_type="sealed_account", object_id=row.pk,
                )

    # transient=True: a refusal is retried like an outage (only the attempts count toward the longest wait).
    claims.attempt_failed(SealedAccount, [account.pk], token, error=message, mark=mark, report=report)
    log.warning("sealed account %s: rotation failed (attempt %d): %s", account.name, account.attempts + 1, message)
