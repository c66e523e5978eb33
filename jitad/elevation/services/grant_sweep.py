"""The grants' sweep: claim every grant that needs work and send it on (revocations first).

The database is the source of truth and a message only says "look now": whatever was
lost, duplicated or late, the sweep finds grants whose expiry has passed (or whose end
was asked for) and drives them to removal, retries failed applies and removals when
they are due, re-sends server checks that are pending, deletes ended grants' ephemeral accounts, and starts scheduled grants whose
time has come (``grant_schedule``). When the broker does not
answer, ``revocations_sweep_here`` does the revocations in the watchdog's process.
"""
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, F, Min, Q, Value, When
from django.utils import timezone

from jitad.audit.services import audit_record_many
from jitad.engine import claims, queue
from jitad.engine.selectors import pulse_at
from jitad.engine.services import lease_release, lease_take, pulse_mark

from ..models import Grant
from .grant_revoke import grants_revoke_execute
from .grant_schedule import scheduled_end_due, scheduled_start_due
from ..selectors.due import ENDING_STATES, ends_next, sweep_next_due
from ..selectors.ephemeral import ephemeral_to_delete
from .grant_work import _enqueue_account_delete, _enqueue_apply, _enqueue_revoke, _enqueue_revoke_checks, _entry

log = logging.getLogger(__name__)
GrantState = Grant.State


_CLAIMED_FIELDS = ("id", "state", "revoke_reason", "group_dn", "expires_at", "target_id", "user_id",
                   "user__username", "target__name")


def _changes(to_state: str | None) -> dict:
    """What a claim moving grants to ``to_state`` writes with it, in its one UPDATE.

    The new state, its count of attempts and the reason a grant ends: each further UPDATE of a claimed
    row in the same transaction rewrote every index of the table again and re-checked the row's foreign
    keys (a mass expiry claims thousands).
    """
    if to_state is None:
        return {}
    # A new phase starts its own count of attempts; a retry (a row already in that state) keeps counting.
    moving = ~Q(state=to_state)
    changes = {
        "state": Value(to_state),
        "attempts": Case(When(moving, then=Value(0)), default=F("attempts"),
                         output_field=Grant._meta.get_field("attempts")),
        "next_attempt_at": Case(When(moving, then=Value(None)), default=F("next_attempt_at"),
                                output_field=Grant._meta.get_field("next_attempt_at")),
    }
    if to_state == GrantState.REVOKING:  # why it ends, unless a release or admin revoke said already
        unset = moving & Q(revoke_reason="")
        changes["revoke_reason"] = Case(
            When(unset & Q(state=GrantState.GRANT_FAILED), then=Value(Grant.RevokeReason.FAILED)),
            When(unset, then=Value(Grant.RevokeReason.EXPIRED)),
            default=F("revoke_reason"), output_field=Grant._meta.get_field("revoke_reason"))
    return changes


def _claimable(qs):
    # Only what the audit entries and the messages need: a mass expiry claims thousands of rows.
    return qs.select_related("user", "target").only(*_CLAIMED_FIELDS).order_by("expires_at")


def _claimed_audit(rows: list[Grant], to_state: str | None) -> None:
    """Audit the claimed grants' change of state (``rows`` as they were before the claim)."""
    entries = []
    for g in rows:
        if to_state is not None and g.state != to_state:
            if to_state == GrantState.REVOKING and not g.revoke_reason:
                g.revoke_reason = Grant.RevokeReason.FAILED if g.state == GrantState.GRANT_FAILED else Grant.RevokeReason.EXPIRED
            entries.append(_entry(g, actor="system:sweeper", action=f"grant.{to_state}", before=g.state,
                                  after=to_state, reason=g.revoke_reason))
    audit_record_many(entries)


def _claim(qs, *, to_state: str | None, limit: int) -> tuple[uuid.UUID, list[Grant]]:
    """Claim up to ``limit`` grants matching ``qs`` in one short transaction; audit state changes."""
    with transaction.atomic():
        token, rows = claims.claim(_claimable(qs), limit=limit, now=timezone.now(), **_changes(to_state))
        _claimed_audit(rows, to_state)
    return token, rows


def _claim_groups(qs, *, to_state: str | None, limit: int, queued: int = 0,
                  wait: float = 0.0) -> tuple[dict[str, uuid.UUID], list[Grant]]:
    """As :func:`_claim`, a token per group: each group's removal is a message of its own, whose execution
    keeps the token (``grants_revoke_execute``) instead of writing every grant again to swap it.

    ``queued``: how many messages this sweep already sent; the claim's lease covers their wait,
    and ``wait`` seconds more (a removal sent to run at a grant end still to come).
    """
    with transaction.atomic():
        tokens, rows = claims.claim_each(_claimable(qs), "group_dn", limit=limit, now=timezone.now(),
                                         queued_seconds=queued * settings.JITAD_SWEEP_MESSAGE_SECONDS + wait,
                                         **_changes(to_state))
        _claimed_audit(rows, to_state)
    return tokens, rows


def _due_groups(qs, *, limit: int) -> list[str]:
    """The groups whose due grants fill the next claim, earliest expiry first, whole groups only.

    Groups are taken in the order of their earliest due grant until their due grants add up to
    ``limit`` (at least one group, however large): a claim then covers each of its groups
    entirely, so each group is one message (one modify), whatever order the rows were
    inserted in, and the message count grows with the number of groups, not with N × groups.
    """
    per_group = (qs.order_by().values("group_dn").annotate(n=Count("id"), first=Min("expires_at"))
                 .order_by("first", "group_dn")[:limit])
    groups, total = [], 0
    for row in per_group:
        if groups and total + row["n"] > limit:
            break
        groups.append(row["group_dn"])
        total += row["n"]
    return groups


@dataclass
class Claimed:
    """What one pass of revocation claims did: ``grants`` claimed, ``messages`` sent, and whether it
    stopped at JITAD_SWEEP_MAX_BATCHES with more due (``capped``)."""

    grants: int = 0
    messages: int = 0
    capped: bool = False


def _revocations_claim(now, *, send, limit: int, more=lambda: True, queued: int = 0, ends_by=None,
                       retries: bool = True) -> Claimed:
    """Claim due revocations (new ones first, then retries unless ``retries`` is False), whole groups at a
    time, and hand each group's share to ``send(ids, token, last_end)``: the latest end among them that
    made them due (never one later than the claim's bound: a grant asked to end early has its natural end
    still ahead), None if none did.

    Keeps claiming while there is more to claim and ``more()`` says so: a mass expiry is handed
    out in one sweep instead of waiting for the next one behind the work it queued. ``queued``:
    messages already sent ahead of these (by an earlier pass of the same sweep), which the
    claims' leases wait out too. ``ends_by``: grants ending up to this instant count as ended even
    if this process's clock has not reached it (the scheduler's wake-up for that end, sent by a
    process whose clock may run a little ahead; at most a couple of seconds past ``now``).
    """
    ended = max(now, ends_by) if ends_by else now
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    starting = Grant.objects.filter(
        free,
        Q(expires_at__lte=ended) | Q(revoke_requested_at__isnull=False),
        state__in=ENDING_STATES,  # the states the scheduler's wake-ups look at (selectors/due.py)
    )
    retrying = Grant.objects.filter(free, ready, state__in=[GrantState.REVOKING, GrantState.REVOKE_FAILED])
    wait = max(0.0, (ended - now).total_seconds())  # ends still to come: their removals wait for them
    done = Claimed()
    for qs, to_state in ((starting, GrantState.REVOKING), (retrying, None))[:2 if retries else 1]:
        for _ in range(settings.JITAD_SWEEP_MAX_BATCHES):
            if not more():
                return done
            groups = _due_groups(qs, limit=limit)
            if not groups:
                break
            tokens, rows = _claim_groups(qs.filter(group_dn__in=groups), to_state=to_state, limit=limit,
                                         queued=queued + done.messages, wait=wait)
            if not rows:
                break
            by_group: dict[str, list[Grant]] = defaultdict(list)
            for g in rows:
                by_group[g.group_dn].append(g)
            for group_dn, grants in by_group.items():
                for i in range(0, len(grants), 500):
                    part = grants[i : i + 500]
                    # Run no earlier than the latest end that made these due (a grant whose end is still
                    # to come by this process's clock); a grant asked to end early, or a retry, adds none.
                    ends = [g.expires_at for g in part if g.expires_at <= ended]
                    send([g.id for g in part], tokens[group_dn], max(ends) if ends else None)
                    done.messages += 1
            done.grants += len(rows)
        else:  # every batch it may claim in one pass was full: more may be due
            done.capped = True
    return done


def revocations_sweep_here(*, until: float, **kwargs) -> int:
    """The broker does not answer: revoke due grants in this process until ``until`` (time.monotonic()).

    The watchdog's process calls this (the engine's ``broker_unreachable`` signal), so
    revocations go on while no message reaches a worker: the sweep's claim, then the
    worker's own execution of it. What cannot be started before ``until`` is handed back
    to the next run at once. Returns how many grants it took up.
    """
    done = 0

    def here(ids: list[int], token: uuid.UUID, _last_end=None) -> None:
        nonlocal done
        if time.monotonic() >= until:
            claims.release(Grant, ids, token)
            return
        grants_revoke_execute(grant_ids=ids, token=token)
        done += len(ids)

    # Small batches: each is done before the next is claimed, and the deadline is looked at in between.
    _revocations_claim(timezone.now(), send=here, limit=100, more=lambda: time.monotonic() < until)
    if done:
        log.warning("broker unreachable: %d revocation(s) done in this process", done)
    return done


SWEEP_LEASE = "grant-sweep"
SWEEP_WANTED = "grant-sweep-wanted"  # a pulse: a sweep was asked for while another ran
SWEEP_TASK = "jitad.elevation.sweep"
SWEEP_AGAIN_MAX = 5


def sweep_once(*, due: float | None = None) -> dict[str, int] | None:
    """Run :func:`sweep` unless another process is running one; None when it was skipped.

    Single-flight through the engine's lease ``grant-sweep``: two overlapping sweeps (a slow one
    and the next tick, on another worker) would each claim part of the same groups and split a
    group's removal into several modifies. A sweep that finds the lease held is not lost: it
    leaves a mark (the pulse ``grant-sweep-wanted``) and tries the lease once more, and the
    running sweep looks for a new mark at its end and again after giving the lease up, so
    work that fell due while it ran (the scheduler's wake-up for the next grant end) goes out
    at once, not at the next periodic sweep; so does a sweep that stopped at
    JITAD_SWEEP_MAX_BATCHES with more due. Marks are compared by value, never by clock. The
    lease is renewed before each claim of revocations, so a long mass-expiry sweep keeps it;
    it outlives a sweep that died mid-way only until it lapses (two periodic intervals, at
    least ten seconds). The watchdog's own revocations (``revocations_sweep_here``) do not
    wait for it.

    ``due`` (time.time()): the grant end the scheduler woke this sweep for.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    seconds = max(10.0, 2 * settings.JITAD_SWEEP_INTERVAL)
    if not lease_take(name=SWEEP_LEASE, holder=holder, seconds=seconds):
        pulse_mark(name=SWEEP_WANTED)  # the running sweep will look again...
        if not lease_take(name=SWEEP_LEASE, holder=holder, seconds=seconds):  # ...unless it just ended
            log.debug("sweep skipped: another process is running it (it will look again)")
            return None

    def keep() -> bool:  # between claims: renew the lease; stop if another process took it
        return lease_take(name=SWEEP_LEASE, holder=holder, seconds=seconds)

    ends_by = None
    if due is not None:  # the end it was woken for, by a clock that may run ahead of ours (a little)
        ends_by = min(datetime.fromtimestamp(due, UTC), timezone.now() + timedelta(seconds=2))
    counts: dict[str, int] = {}
    queued = 0
    for _ in range(SWEEP_AGAIN_MAX):
        seen = pulse_at(name=SWEEP_WANTED)
        try:
            last = sweep(keep=keep, queued=queued, ends_by=ends_by)
        except BaseException:
            lease_release(name=SWEEP_LEASE, holder=holder)
            raise
        if pulse_at(name=SWEEP_WANTED) == seen:
            lease_release(name=SWEEP_LEASE, holder=holder)  # then look once more, below
        counts = {k: counts.get(k, 0) + last.get(k, 0) for k in counts.keys() | last.keys()}
        queued += last["revoke_messages"]
        ends_by = None
        if pulse_at(name=SWEEP_WANTED) != seen or last["revoke_more"]:
            # Asked for meanwhile (or capped with more due): again, now, if the lease is still ours
            # or free (a sweep that took it meanwhile does the work).
            if keep():
                continue
        return counts
    lease_release(name=SWEEP_LEASE, holder=holder)
    queue.enqueue(SWEEP_TASK)  # still wanted after SWEEP_AGAIN_MAX passes: a sweep of its own
    return counts


AHEAD_TASK = "jitad.elevation.revoke_ahead"


def revoke_ahead_wakeup(*, after, **kwargs) -> tuple[str, object] | None:
    """The engine's ``next_due`` receiver for grant ends claimed ahead: JITAD_REVOKE_LEAD_SECONDS before the
    next end. A wake-up sent at ``t`` covers the ends up to ``t`` + the lead, so the next question (from
    ``t``) asks for ends after that."""
    lead = timedelta(seconds=settings.JITAD_REVOKE_LEAD_SECONDS)
    if not lead:
        return None
    end = ends_next(after=after + lead)
    return (AHEAD_TASK, end - lead) if end is not None else None


def revocations_claim_ahead(*, due: float | None = None) -> dict[str, int] | None:
    """Claim the grants ending within JITAD_REVOKE_LEAD_SECONDS of ``due`` (the scheduler's wake-up, sent that
    long before the end), and send each group's removal to run at its last grant's end.

    The claim, its audit (``grant.revoking``, written up to the lead before the end) and the broker's hop
    are done before the end comes; the worker holds the message until then (its ETA), so the membership
    goes at the end and never before it (on every node's clock kept by NTP). The claims' leases cover the
    wait. Single-flight with the sweep, through its lease: if a sweep is running, nothing is claimed here
    and the sweep the scheduler wakes at the end itself does the work. None when skipped.
    """
    if due is None:
        return None
    lead = timedelta(seconds=settings.JITAD_REVOKE_LEAD_SECONDS)
    now = timezone.now()
    # The end it was woken for, by a clock that may run ahead of ours (a little): never more than the lead
    # (and the same two seconds the sweep allows) ahead of this process's clock.
    ends_by = min(datetime.fromtimestamp(due, UTC) + lead, now + lead + timedelta(seconds=2))
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    seconds = max(10.0, 2 * settings.JITAD_SWEEP_INTERVAL)
    if not lease_take(name=SWEEP_LEASE, holder=holder, seconds=seconds):
        return None
    seen = pulse_at(name=SWEEP_WANTED)
    try:
        claimed = _revocations_claim(now, send=_enqueue_revoke, limit=settings.JITAD_SWEEP_BATCH, ends_by=ends_by,
                                     retries=False, more=lambda: lease_take(name=SWEEP_LEASE, holder=holder,
                                                                            seconds=seconds))
    finally:
        lease_release(name=SWEEP_LEASE, holder=holder)
        if pulse_at(name=SWEEP_WANTED) != seen:  # a sweep found the lease held meanwhile and left it to us
            queue.enqueue(SWEEP_TASK)
    return {"revoke": claimed.grants, "revoke_messages": claimed.messages}


def sweep_wakeup(*, after, **kwargs) -> tuple[str, object] | None:
    """The engine's ``next_due`` receiver: the sweep, at the next grant end, retry or scheduled start."""
    when = sweep_next_due(after=after)
    return (SWEEP_TASK, when) if when is not None else None


def sweep(*, now=None, keep=lambda: True, queued: int = 0, ends_by=None) -> dict[str, int]:
    """Drive every grant that needs work: due revocations first, then stalled or retried applies.

    ``keep()`` is asked before each claim of revocations (the single-flight lease's renewal):
    a mass expiry's claims may take longer than the lease. ``queued`` and ``ends_by``: see
    :func:`_revocations_claim`. In the counts, ``revoke_more`` is 1 when the claims stopped at
    JITAD_SWEEP_MAX_BATCHES with more due, ``revoke_messages`` the messages sent.
    """
    now = now or timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    limit = settings.JITAD_SWEEP_BATCH
    # A group whose last end is still to come (woken by a scheduler whose clock runs a little ahead) is
    # removed at that end, not before.
    revoked = _revocations_claim(now, send=_enqueue_revoke, limit=limit, more=keep, queued=queued, ends_by=ends_by)
    counts = {"revoke": revoked.grants, "revoke_more": int(revoked.capped), "revoke_messages": revoked.messages,
              "apply": 0, "revoke_check": 0}
    # Scheduled grants hold nothing in AD: those that end before they start are closed here, and
    # those whose start has come move to granting (their applies go out with this sweep's).
    counts["scheduled_end"] = scheduled_end_due(now, limit=limit)
    counts["scheduled_start"] = scheduled_start_due(now, limit=limit)

    # Revoked grants whose check on the server is due (first try lost, or a retry).
    checks = Grant.objects.filter(free, ready, state=GrantState.REVOKED, host_revoke_check=Grant.HostCheck.PENDING)
    token, rows = _claim(checks, to_state=None, limit=limit)
    if rows:
        _enqueue_revoke_checks(rows, token)
    counts["revoke_check"] = len(rows)

    # Ended grants' ephemeral accounts, deleted once the server's check (and logoff) is done.
    token, rows = _claim(ephemeral_to_delete(free=free, ready=ready), to_state=None, limit=limit)
    for i in range(0, len(rows), 100):
        _enqueue_account_delete([g.id for g in rows[i:i + 100]], token)
    counts["account_delete"] = len(rows)

    not_ending = Q(expires_at__gt=now, revoke_requested_at__isnull=True)
    first_apply = Grant.objects.filter(free, not_ending, state=GrantState.APPROVED)
    retry_apply = Grant.objects.filter(
        free, ready, not_ending,
        Q(state=GrantState.GRANTING) | Q(state__in=[GrantState.GRANT_FAILED, GrantState.UNVERIFIED], retryable=True),
    )
    for qs, to_state in ((first_apply, GrantState.GRANTING), (retry_apply, None)):
        token, rows = _claim(qs, to_state=to_state, limit=limit)
        for g in rows:
            _enqueue_apply(g.id, token)
        counts["apply"] += len(rows)
    pulse_mark(name="sweep")  # the watchdog alerts when this stops moving
    return counts
