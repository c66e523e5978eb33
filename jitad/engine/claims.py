"""The verbs of claimed work (``jitad.engine.models.ClaimedWork``): claim, take, release, and the lease.

* ``claim`` (a sweep, or a service that starts work): mark rows nobody holds with a new token
  and a lease, in one short transaction, skipping rows another transaction has locked.
* ``claim_each``: the same, with a token per value of a field (a message per group).
* ``take`` (the execution a message starts): swap the message's token for the execution's
  own. A second delivery of the same message finds no row with its token and does nothing;
  a message whose claim lapsed and was claimed again by a sweep does nothing either. A
  message whose token is its own (``claim_each``) may keep it instead: nothing is written.
* ``release``: hand a claim back at once (its message could not be sent, or the work is not
  this execution's to do), so the next sweep claims the row without waiting for the lease.
* ``held`` (jitad.engine.keeper): renew the lease while the execution works.
* ``attempt_failed``: count a failed attempt, schedule the next one with the engine's backoff,
  drop the claim, and past the limit (or on a failure that retrying cannot fix) tell the
  domain that the work ran out, so it moves the row to its failed state, audits and alerts
  in its own words, in the same transaction.

No network call happens inside these transactions: claim, commit, act, then record the
outcome conditional on still holding the claim.
"""
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact
from django.utils import timezone

from jitad import metrics

from .keeper import held, lease_seconds, lease_until
from .retry import backoff_seconds

__all__ = ["Failed", "attempt_failed", "claim", "claim_each", "held", "holding", "lease_until", "release", "take"]

ERROR_MAX = 2000  # characters of an error kept on the row


def claim(qs: QuerySet, *, limit: int, now: datetime | None = None, queued_seconds: float = 0.0,
          until: datetime | None = None, **changes) -> tuple[uuid.UUID, list]:
    """Claim up to ``limit`` rows of ``qs`` that no other transaction has locked; returns (token, rows).

    ``qs`` says which rows are due and free (the caller's filter on ``lease_until`` and
    ``next_attempt_at``). ``changes`` are written to the claimed rows with the claim. The rows
    come back as they were before the claim, so the caller can tell what changed.
    ``queued_seconds`` lengthens the lease by how long the claim's message may wait in the
    queue behind the others the caller just sent (a mass expiry's last groups): a claim that
    lapsed before its message was even read would be claimed and sent again. ``until``: the lease's end
    instead (a message whose wait the caller knows), written with the claim, not by a second UPDATE.
    """
    token = uuid.uuid4()
    rows = _claim(qs, limit=limit, now=now, queued_seconds=queued_seconds, until=until,
                  token=lambda rows: Value(token, output_field=qs.model._meta.get_field("claim_token")), changes=changes)
    return token, rows


def claim_each(qs: QuerySet, field: str, *, limit: int, now: datetime | None = None, queued_seconds: float = 0.0,
               until: datetime | None = None, **changes) -> tuple[dict[Any, uuid.UUID], list]:
    """As :func:`claim`, but each value of ``field`` among the claimed rows gets a token of its own; returns
    ({value: token}, rows), in the same one UPDATE.

    For work sent as a message per value (a revocation per group): each message then carries a token
    that is its own, and its execution keeps it (``take(..., keep=True)``) instead of writing every row
    again to swap it. A value whose rows go out in several messages (a group too large for one) shares
    its token between them: what each records is still by key, and the keeper of one renews the
    others' leases while it works.
    """
    tokens: dict[Any, uuid.UUID] = {}
    token_field = qs.model._meta.get_field("claim_token")

    def token(rows):
        for row in rows:
            tokens.setdefault(getattr(row, field), uuid.uuid4())
        if len(tokens) == 1:
            return Value(next(iter(tokens.values())), output_field=token_field)
        return Case(*[When(**{field: value}, then=Value(t, output_field=token_field)) for value, t in tokens.items()],
                    output_field=token_field)

    rows = _claim(qs, limit=limit, now=now, queued_seconds=queued_seconds, until=until, token=token, changes=changes)
    return tokens, rows


def _claim(qs: QuerySet, *, limit: int, now, queued_seconds: float, until, token: Callable, changes: dict) -> list:
    with transaction.atomic():
        rows = list(qs.select_for_update(skip_locked=True, of=("self",))[:limit])
        if rows:
            lapses = until if until is not None else lease_until(now) + timedelta(seconds=queued_seconds)
            qs.model.objects.filter(pk__in=[r.pk for r in rows]).update(claim_token=token(rows), lease_until=lapses,
                                                                        **changes)
    return rows


def holding(token):
    """A filter for rows the caller names by key, that still carry ``token``: the token compared as a
    value, never looked up through its index.

    One claim's token may name a whole batch (a mass expiry's 2,000 grants, or 5,000 e-mails), and
    PostgreSQL, taking the token for the rarer of the two, read every row of the batch and matched each
    against the keys: with ``filter(holding(token), pk__in=keys)`` it reads the keys' rows alone.
    """
    return Exact(Coalesce("claim_token", "claim_token"), _uuid(token))


def _uuid(token) -> uuid.UUID:
    return token if isinstance(token, uuid.UUID) else uuid.UUID(str(token))  # a message carries it as text


def take(rows, pks, token, *, keep: bool = False) -> tuple[uuid.UUID, list]:
    """Swap ``token`` for this execution's own on the rows ``pks`` that still carry it; returns (mine, rows).

    ``rows`` is the model, or a queryset of it that narrows what may be taken (a state) and
    how the rows come back (``select_related``, an order). The list is empty when another
    delivery of the same message, or a later claim, has them.

    ``keep``: the token is this message's own (``claim_each``), and the execution keeps it: nothing is
    written unless less than two thirds of a lease is left (the keeper renews it from then on, every
    third of one). A second delivery of the same message running at the same time then does the same
    work, which must be idempotent, and records nothing: recording the outcome is conditional on the
    claim, and the first to record it ends the claim.
    """
    base = rows if isinstance(rows, QuerySet) else rows.objects.all()
    pks = list(pks)
    if keep:
        token = _uuid(token)  # handed back as it is held
        soon = timezone.now() + timedelta(seconds=lease_seconds() * 2 / 3)
        base.filter(holding(token), pk__in=pks, lease_until__lt=soon).update(lease_until=lease_until())
        return token, list(base.filter(holding(token), pk__in=pks))
    mine = uuid.uuid4()
    with transaction.atomic():
        base.filter(holding(token), pk__in=pks).update(claim_token=mine, lease_until=lease_until())
    # By key as well as by token: read through the primary key whatever else is claimed.
    return mine, list(base.filter(pk__in=pks, claim_token=mine))


def release(model, pks, token) -> int:
    """Hand the rows ``pks`` claimed with ``token`` back to the sweep at once; returns how many."""
    return model.objects.filter(pk__in=list(pks), claim_token=token).update(claim_token=None, lease_until=None)


@dataclass
class Failed:
    """One row's failed attempt, as ``attempt_failed`` recorded it, for the domain's wording."""

    row: Any
    before: Any  # the row's state field before the domain marked it (None without one)
    exhausted: bool  # no retry will fix it: the attempts ran out, or the failure is permanent


def attempt_failed(
    rows,
    pks: Iterable,
    token: uuid.UUID | None,
    *,
    error: str,
    transient: bool = True,
    max_attempts: int | None = None,
    mark: Callable[[Any, bool, datetime], Iterable[str] | None] | None = None,
    report: Callable[[list[Failed]], None] | None = None,
    state_field: str | None = "state",
    backoff: Callable[..., float] = backoff_seconds,
) -> list[Failed]:
    """Record a failed attempt on the rows ``pks`` still claimed with ``token``; returns what was recorded.

    In one transaction, for each row this execution still holds (a row whose claim lapsed
    and was claimed again belongs to someone else and is left alone): ``attempts`` goes up
    by one, ``last_error`` keeps ``error`` (cut to ERROR_MAX characters), the row is
    *exhausted* when ``transient`` is false or ``attempts`` reached ``max_attempts``
    (JITAD_RETRY_MAX_ATTEMPTS by default), ``next_attempt_at`` is now plus
    ``backoff(attempts, failed=exhausted)`` (the longest wait once exhausted), and the
    claim is dropped so the domain's sweep finds the row when it is due.

    The domain supplies only what is its own:

    * ``mark(row, exhausted, now)`` changes the row further before it is saved (moves it to
      its failed state, overrides ``next_attempt_at`` or ``last_error``) and returns the
      names of the extra fields it changed;
    * ``report(failures)`` audits and alerts, inside the same transaction, with every
      failure's row, its state before (``state_field``) and whether it is exhausted.

    ``token`` None matches rows that nobody holds (work that is not claimed with a token).
    """
    limit = settings.JITAD_RETRY_MAX_ATTEMPTS if max_attempts is None else max_attempts
    base = rows if isinstance(rows, QuerySet) else rows.objects.all()
    message = error[:ERROR_MAX]
    failures = []
    with transaction.atomic():
        now = timezone.now()
        for row in base.select_for_update(of=("self",)).filter(pk__in=list(pks), claim_token=token).order_by("pk"):
            before = getattr(row, state_field) if state_field else None
            row.attempts += 1
            row.last_error = message
            exhausted = not transient or row.attempts >= limit
            row.next_attempt_at = now + timedelta(seconds=backoff(row.attempts, failed=exhausted))
            row.claim_token = row.lease_until = None
            extra = list(mark(row, exhausted, now) or ()) if mark else []
            stamped = [f.name for f in row._meta.concrete_fields if getattr(f, "auto_now", False)]
            row.save(update_fields=list(dict.fromkeys(
                ["attempts", "last_error", "next_attempt_at", "claim_token", "lease_until", *extra, *stamped])))
            failures.append(Failed(row=row, before=before, exhausted=exhausted))
        if failures and report is not None:
            report(failures)
        if failures:
            kind = base.model._meta.label_lower
            outcomes = [(str(f.before or ""), "exhausted" if f.exhausted else "retry") for f in failures]
            transaction.on_commit(lambda: _failures_count(kind, outcomes))
    return failures


def _failures_count(kind: str, outcomes: list[tuple[str, str]]) -> None:
    for (state, outcome), n in Counter(outcomes).items():
        metrics.count(metrics.work_failures, n, kind=kind, state=state, outcome=outcome)
