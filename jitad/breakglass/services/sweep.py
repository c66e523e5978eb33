"""Beat's break-glass round: pending checkouts expire, windows end, openings and rotations are (re)sent."""
import uuid

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Checkout, SealedAccount
from .accounts import _enqueue_rotate
from .checkouts import _enqueue_open, checkouts_checkin_due, checkouts_expire_pending
from .common import lease

BATCH = 200


def _claim(qs) -> tuple[uuid.UUID, list[int]]:
    """Claim the rows of ``qs`` nobody holds, in one short transaction."""
    token = uuid.uuid4()
    with transaction.atomic():
        ids = list(qs.select_for_update(skip_locked=True).values_list("pk", flat=True)[:BATCH])
        qs.model.objects.filter(pk__in=ids).update(claim_token=token, lease_until=lease())
    return token, ids


def breakglass_sweep(*, now=None) -> dict[str, int]:
    """Drive every checkout and account that needs work; the database says what, the broker only wakes workers."""
    now = now or timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    counts = {"expired": checkouts_expire_pending(now=now), "checked_in": checkouts_checkin_due(now=now)}
    token, ids = _claim(Checkout.objects.filter(free, ready, state=Checkout.State.OPENING, expires_at__gt=now))
    for pk in ids:
        _enqueue_open(pk, token)
    counts["opening"] = len(ids)
    due = SealedAccount.objects.filter(
        free, ready, state__in=[SealedAccount.State.ENROLLING, SealedAccount.State.ROTATING, SealedAccount.State.EXPOSED])
    token, ids = _claim(due)
    for pk in ids:
        _enqueue_rotate(pk, token)
    counts["rotating"] = len(ids)
    return counts
