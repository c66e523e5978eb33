"""Opening an approved checkout: the worker enables the sealed account in AD, retried with backoff until it works.

Only a checkout of an account kept disabled while sealed needs this step; the others open at
approval. A failure goes through the engine's "attempt failed" routine and never gives up
while the window lasts: the check-in that ends the window stops it.
"""
import logging
import sys
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_record_many
from jitad.engine import claims, keeper
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import Checkout
from .common import admin_link, checkout_entry, release, take, who

log = logging.getLogger(__name__)
CheckoutState = Checkout.State


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
                    body=f"{who(row.holder)} holds an approved checkout but the account is still disabled: "
                         f"{row.last_error}\njitad keeps retrying until the window ends.",
                    link=admin_link("checkout", row.pk), object_type="checkout", object_id=row.pk,
                )

    claims.attempt_failed(Checkout.objects.select_related("account", "holder"), [checkout.pk], token,
                          error=f"{type(error).__name__}: {error}", max_attempts=sys.maxsize, report=report)
