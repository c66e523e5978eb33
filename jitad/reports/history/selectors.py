"""Who held a target's admin right (or what a person held) at a moment or over a range: every source, one list.

Sources (docs/access-history.md): JIT grants with their requests and approvals, standing
members seen by host scans, members the reconciler found out of band (removed, or held for
an operator), and break-glass checkouts of accounts that confer the right. Intervals are
closed at both ends: a grant revoked at 10:00 was held at 10:00.
"""
from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone

from jitad.elevation.models import Target
from jitad.elevation.selectors.targets import target_find

from . import sources
from .standing import standing
from .rows import Holding, Source

READERS = {
    Source.GRANT: sources.grants,
    Source.STANDING: standing,
    Source.OUT_OF_BAND: sources.out_of_band,
    Source.HELD: sources.held,
    Source.BREAKGLASS: sources.breakglass,
}


def access_at(*, target: Target | None = None, person=None, start: datetime, end: datetime | None = None,
              kinds=Source.ALL) -> list[Holding]:
    """Every holding of ``target``'s right (or every right ``person`` held) overlapping [start, end].

    ``end`` None means the moment ``start``. At least one of ``target`` and ``person`` (a user)
    is required. Rows come oldest first; a constant number of queries whatever their count.
    """
    if target is None and person is None:
        raise ValueError("name a target or a person")
    if timezone.is_naive(start) or (end is not None and timezone.is_naive(end)):
        raise ValueError("times must be timezone-aware")
    hi = start if end is None else end
    if hi < start:
        raise ValueError("the range ends before it starts")
    who = sources.person_of(person) if person is not None else None
    rows = []
    for kind in kinds:
        rows += READERS[kind](lo=start, hi=hi, target=target, person=who)
    rows.sort(key=lambda h: (h.start, h.target or "", h.source, h.record_id))
    return rows


def target_lookup(ref: str) -> Target | None:
    """``elevation``'s target_find (exact name, else id), or else the name in any case: history outlives
    disabled targets, and people type srv01 for SRV01."""
    ref = (ref or "").strip()
    if not ref:
        return None
    return target_find(ref=ref) or Target.objects.filter(name__iexact=ref).first()


def person_lookup(ref: str):
    """A user by user name (case-insensitive), with their AD account; None when unknown."""
    ref = (ref or "").strip()
    if not ref:
        return None
    model = get_user_model()
    return (model.objects.filter(**{f"{model.USERNAME_FIELD}__iexact": ref})
            .select_related("directory_account").first())
