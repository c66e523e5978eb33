"""Beat's break-glass round: pending checkouts expire, windows end, openings and rotations are (re)sent."""
import logging
import time
import uuid

from django.db.models import Q
from django.utils import timezone

from jitad.engine import claims

from ..models import Checkout, SealedAccount
from .accounts import account_rotate_execute
from .checkins import checkouts_checkin_due
from .checkout_opening import checkout_open_execute
from .checkout_requests import checkouts_expire_pending
from .common import enqueue_open, enqueue_rotate, release

log = logging.getLogger(__name__)
BATCH = 200


def _claim(qs) -> tuple[uuid.UUID, list[int]]:
    """Claim the rows of ``qs`` nobody holds, in one short transaction."""
    token, rows = claims.claim(qs, limit=BATCH)
    return token, [r.pk for r in rows]


def _due(now) -> Q:
    """Rows nobody holds (no lease, or a lapsed one) whose next attempt is due."""
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return free & ready


def _openings_due(now):
    """Approved checkouts whose account is still to be enabled, while their window lasts."""
    return Checkout.objects.filter(_due(now), state=Checkout.State.OPENING, expires_at__gt=now)


def _rotations_due(now):
    """Accounts whose first password, or a new one, is still to be set."""
    return SealedAccount.objects.filter(_due(now), state__in=[
        SealedAccount.State.ENROLLING, SealedAccount.State.ROTATING, SealedAccount.State.EXPOSED])


def breakglass_sweep(*, now=None) -> dict[str, int]:
    """Drive every checkout and account that needs work; the database says what, the broker only wakes workers."""
    now = now or timezone.now()
    counts = {"expired": checkouts_expire_pending(now=now), "checked_in": checkouts_checkin_due(now=now)}
    token, ids = _claim(_openings_due(now))
    for pk in ids:
        enqueue_open(pk, token)
    counts["opening"] = len(ids)
    token, ids = _claim(_rotations_due(now))
    for pk in ids:
        enqueue_rotate(pk, token)
    counts["rotating"] = len(ids)
    return counts


def breakglass_sweep_here(*, until: float, **kwargs) -> int:
    """The broker does not answer: do the break-glass round in this process until ``until`` (time.monotonic()).

    The watchdog's process calls this (the engine's ``broker_unreachable`` signal): windows that
    ended are checked in, and the accounts they leave exposed are disabled and rotated here, as
    the worker would; checkouts approved meanwhile are opened (an incident is when break-glass
    is needed, broker or not). Same claims as the sweep, same executions as the worker's tasks;
    what cannot be started before ``until`` is handed back at once. Returns the rows taken up.
    """
    now = timezone.now()
    checkouts_expire_pending(now=now)
    checkouts_checkin_due(now=now)
    done = 0
    rounds = (
        (SealedAccount, _rotations_due(now), lambda pk, token: account_rotate_execute(account_id=pk, token=token)),
        (Checkout, _openings_due(now), lambda pk, token: checkout_open_execute(checkout_id=pk, token=token)),
    )
    for model, qs, execute in rounds:
        if time.monotonic() >= until:
            break
        token, ids = _claim(qs)
        for pk in ids:
            if time.monotonic() >= until:
                release(model, pk, token)
                continue
            execute(pk, token)
            done += 1
    if done:
        log.warning("broker unreachable: %d break-glass account(s) and checkout(s) done in this process", done)
    return done
