"""The verbs of claimed work (``jitad.engine.models.ClaimedWork``): claim, take, release, and the lease.

* ``claim`` (a sweep, or a service that starts work): mark rows nobody holds with a new token
  and a lease, in one short transaction, skipping rows another transaction has locked.
* ``take`` (the execution a message starts): swap the message's token for the execution's
  own. A second delivery of the same message finds no row with its token and does nothing;
  a message whose claim lapsed and was claimed again by a sweep does nothing either.
* ``release``: hand a claim back at once (its message could not be sent, or the work is not
  this execution's to do), so the next sweep claims the row without waiting for the lease.
* ``held`` (jitad.engine.keeper): renew the lease while the execution works.

No network call happens inside these transactions: claim, commit, act, then record the
outcome conditional on still holding the claim.
"""
import uuid
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet

from .keeper import held, lease_until

__all__ = ["claim", "held", "lease_until", "release", "take"]


def claim(qs: QuerySet, *, limit: int, now: datetime | None = None, **changes) -> tuple[uuid.UUID, list]:
    """Claim up to ``limit`` rows of ``qs`` that no other transaction has locked; returns (token, rows).

    ``qs`` says which rows are due and free (the caller's filter on ``lease_until`` and
    ``next_attempt_at``). ``changes`` are written to the claimed rows with the claim. The rows
    come back as they were before the claim, so the caller can tell what changed.
    """
    token = uuid.uuid4()
    with transaction.atomic():
        rows = list(qs.select_for_update(skip_locked=True, of=("self",))[:limit])
        if rows:
            qs.model.objects.filter(pk__in=[r.pk for r in rows]).update(
                claim_token=token, lease_until=lease_until(now), **changes)
    return token, rows


def take(rows, pks, token) -> tuple[uuid.UUID, list]:
    """Swap ``token`` for this execution's own on the rows ``pks`` that still carry it; returns (mine, rows).

    ``rows`` is the model, or a queryset of it that narrows what may be taken (a state) and
    how the rows come back (``select_related``, an order). The list is empty when another
    delivery of the same message, or a later claim, has them.
    """
    base = rows if isinstance(rows, QuerySet) else rows.objects.all()
    mine = uuid.uuid4()
    with transaction.atomic():
        base.filter(pk__in=list(pks), claim_token=token).update(claim_token=mine, lease_until=lease_until())
    return mine, list(base.filter(claim_token=mine))


def release(model, pks, token) -> int:
    """Hand the rows ``pks`` claimed with ``token`` back to the sweep at once; returns how many."""
    return model.objects.filter(pk__in=list(pks), claim_token=token).update(claim_token=None, lease_until=None)
