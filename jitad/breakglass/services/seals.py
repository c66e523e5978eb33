"""Seals: a sealed account's password must be known to nobody. A seal is broken when that may no longer hold (an
envelope opened, a password set or an account enabled outside jitad, found by the periodic check against AD): the
break is alerted and the password rotated."""
import logging
import uuid

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_record_many
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import Checkout, Seal, SealedAccount
from .accounts import rotation_start
from .common import account_entry, admin_link, end_unused

log = logging.getLogger(__name__)
AccountState = SealedAccount.State


def seal_break(*, account: SealedAccount, reason: str, detail: str, actor: str) -> uuid.UUID | None:
    """The password may be known outside jitad: alert, break the seal and rotate.

    A sealed account is rotated now. A checked-out one: a checkout in use is rotated at its
    check-in (the seal is broken now, so no envelope of it can be printed); a pending
    checkout or an envelope not yet printed is ended and the account rotated now. Returns
    the rotation's claim when one was started here.
    """
    now = timezone.now()
    with transaction.atomic():
        row = SealedAccount.objects.select_for_update().get(pk=account.pk)
        if row.seal_id != account.seal_id:
            return None  # rotated since: that seal is broken already
        Seal.objects.filter(account=row, seal_id=row.seal_id, broken_at__isnull=True).update(
            broken_at=now, broken_reason=f"{reason}: {detail}"[:200])
        token = None
        if row.state == AccountState.CHECKED_OUT:
            live = Checkout.objects.select_for_update(of=("self",)).select_related("account", "holder").filter(
                account=row, state__in=Checkout.LIVE_STATES).first()
            in_use = live is not None and live.purpose == Checkout.Purpose.USE and live.state in (
                Checkout.State.OPENING, Checkout.State.OPEN, Checkout.State.RETURNING)
            if live is not None and not in_use:
                end_unused(live, state=Checkout.State.CANCELLED, actor=actor, reason=f"seal broken: {detail}")
                row.refresh_from_db()
        if row.state == AccountState.SEALED:
            token = rotation_start(account=row, reason=reason, actor=actor, detail=detail)
        audit_record_many([account_entry(row, actor=actor, action="breakglass.seal_broken", before=row.state,
                                         after=row.state, reason=detail, seal_id=account.seal_id,
                                         rotating_now=token is not None)])
        alert_raise(
            event="breakglass.seal_broken", severity=Notification.Severity.CRITICAL,
            subject=f"Seal broken: break-glass account {row.name}",
            body=f"Seal {account.seal_id} of {row.name} is broken: {detail}\n"
                 + ("jitad is rotating the password now." if token else
                    f"{row.name} is {row.get_state_display()}: its password is rotated when that ends."),
            link=admin_link("sealedaccount", row.pk), object_type="sealed_account", object_id=row.pk,
        )
    return token


def seals_check() -> dict[str, int]:
    """Compare every sealed account with AD: a password set or an account enabled outside jitad breaks the seal."""
    counts = {"checked": 0, "broken": 0, "failed": 0}
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now())
    accounts = list(SealedAccount.objects.filter(free, state=AccountState.SEALED).exclude(user_guid=""))
    if not accounts:
        return counts
    try:
        with directory.session() as d:
            for account in accounts:
                problem = ""
                try:
                    facts = d.account_facts(d.find_user_by_guid(account.user_guid).dn)
                except directory.DirectoryNotFound:
                    problem = "the account no longer exists in AD"
                    facts = None
                if facts is not None:
                    counts["checked"] += 1
                    if account.pwd_last_set is not None and facts.pwd_last_set != account.pwd_last_set:
                        problem = "its password was set outside jitad (pwdLastSet changed)"
                    elif account.disable_when_sealed and facts.enabled:
                        problem = "it was enabled outside jitad"
                if problem:
                    seal_break(account=account, reason=Seal.Reason.SEAL_BROKEN, detail=problem,
                               actor="system:seal-check")
                    counts["broken"] += 1
    except directory.DirectoryError as e:
        counts["failed"] = len(accounts) - counts["checked"]
        log.warning("seal check stopped: %s", e)
    return counts
