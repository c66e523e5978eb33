"""The reconciler's brake: removals beyond a share of a group are held until an operator says yes or no.

A reconcile run that would remove more than ``removal_limit`` members of one group removes
none of them (docs/reconciler.md). It records each as a ``HeldRemoval``, audits it, and
raises one alert per group (an ``AlertCondition``, so later runs only count it) that stays
open until every hold of the group is decided. Meanwhile the group is not frozen: grants
add and remove their own members, and out-of-band members beyond the held ones are
reconciled as usual. An operator confirms (the worker removes them as claimed work: claim
token, lease kept by the engine's keeper, retries with backoff) or discards (they stay, and
the reconciler leaves them alone while they stay in the group).
"""
import hashlib
import logging
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from jitad import directory
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.engine import claims, keeper, queue
from jitad.notifications.models import Notification
from jitad.notifications.services import condition_raise, condition_resolve, conditions_open

from ..models import HeldRemoval
from ..selectors import backing
from ..selectors.targets import group_nested_into_protected

log = logging.getLogger(__name__)
HeldState = HeldRemoval.State
ACTOR = "system:reconciler"
LISTED = 20  # members named in an alert; the rest are counted
TASK = "jitad.elevation.held_removals_execute"
FAILED_KEY = "reconcile.held_failed"


def removal_limit(members: int) -> int:
    """How many of a group of ``members`` one reconcile run may remove without asking."""
    share = math.floor(settings.JITAD_RECONCILE_MAX_REMOVE_SHARE * members)
    return max(settings.JITAD_RECONCILE_MAX_REMOVE_MIN, share)


def _name(group_dn: str) -> str:
    try:
        return directory.split_dn(group_dn)[0]
    except directory.DirectoryError:
        return group_dn


def _key(group_dn: str) -> str:
    """The alert condition of one group's holds (keys are short; DNs may not be)."""
    try:
        norm = directory.normalize_dn(group_dn)
    except directory.DirectoryError:
        norm = group_dn.lower()
    return f"reconcile.held:{_name(group_dn)[:100]}:{hashlib.sha256(norm.encode()).hexdigest()[:12]}"


def _link() -> str:
    return settings.JITAD_BASE_URL + reverse("admin:elevation_heldremoval_changelist") + "?state__exact=pending"


def _entry(h: HeldRemoval, *, actor: str, action: str, before: str, after: str, reason: str = "", **data) -> AuditEntry:
    return AuditEntry(actor=actor, action=action, object_type="held_removal", object_id=str(h.pk), before=before,
                      after=after, reason=reason, data={"group": h.group_dn, "member": h.member_dn, **data})


# -- the reconciler's decision ---------------------------------------------------------
def holds_screen(*, group_dn: str, members: set[str], extra: list[str], joined: frozenset[str] = frozenset()) -> list[str]:
    """Of ``extra`` (members of ``group_dn`` no grant backs), those the reconciler may remove now.

    Members already held, or discarded by an operator, are left alone. Those in ``joined``
    (normalised DNs that were not in the group at the previous run) were added since, out of
    band: they are always removed, however many, so decoys added beside an attacker never
    hold the attacker in. If the long-standing rest is more than
    ``removal_limit(len(members))``, all of the rest is held (none of it removed) and the
    group's alert is raised; otherwise it is removed too. Pending holds whose member left the
    group or is backed now are cleared. One short transaction, no network call.
    """
    now = timezone.now()
    wanted = {directory.normalize_dn(dn): dn for dn in extra}
    present = {directory.normalize_dn(dn) for dn in members}
    with transaction.atomic():
        rows = list(HeldRemoval.objects.select_for_update().filter(
            Q(state__in=HeldRemoval.OPEN_STATES) | Q(state=HeldState.DISCARDED, left_at__isnull=True), group_dn=group_dn))
        if not rows and not wanted:
            return []
        entries, skip = [], set()
        for h in rows:
            if h.state == HeldState.DISCARDED:
                if h.member_key in present:
                    skip.add(h.member_key)
                else:
                    h.left_at = now
                    h.save(update_fields=["left_at"])
                continue
            if h.state == HeldState.PENDING and h.member_key not in wanted:
                h.state, h.done_at = HeldState.CLEARED, now
                h.outcome = "left the group before a decision" if h.member_key not in present else \
                    "backed by a grant or the policy now"
                h.save(update_fields=["state", "done_at", "outcome"])
                entries.append(_entry(h, actor=ACTOR, action="reconcile.hold_cleared", before=HeldState.PENDING, after=HeldState.CLEARED,
                                      reason=h.outcome))
                continue
            skip.add(h.member_key)
        fresh = [dn for key, dn in sorted(wanted.items()) if key not in skip and key not in joined]
        new = [dn for key, dn in sorted(wanted.items()) if key not in skip and key in joined]
        limit = removal_limit(len(members))
        held = len(fresh) > limit
        if held:
            _hold(group_dn, fresh, members=len(members), limit=limit, entries=entries)
        audit_record_many(entries)
        if HeldRemoval.objects.filter(group_dn=group_dn, state=HeldState.PENDING).exists():
            _alert(group_dn, members=len(members), limit=limit)
        else:
            _resolve_if_clear(group_dn)
    if new:
        log.warning("reconcile %s: %d member(s) added since the last run, removed whatever the limit", group_dn,
                    len(new))
    return new + ([] if held else fresh)


def _hold(group_dn: str, dns: list[str], *, members: int, limit: int, entries: list[AuditEntry]) -> None:
    batch = uuid.uuid4()
    reason = (f"{len(dns)} of the group's {members} members have no grant; "
              f"one reconcile run may remove at most {limit}")
    HeldRemoval.objects.bulk_create(
        [HeldRemoval(group_dn=group_dn, member_dn=dn, member_key=directory.normalize_dn(dn), batch=batch, reason=reason)
         for dn in dns],
        ignore_conflicts=True,  # another run held them first: theirs stand
    )
    for h in HeldRemoval.objects.filter(batch=batch).order_by("id"):
        entries.append(_entry(h, actor=ACTOR, action="reconcile.removal_held", before="member", after=HeldState.PENDING,
                              reason=reason, batch=str(batch)))
    log.warning("reconcile %s: %d removal(s) held (limit %d of %d members)", group_dn, len(dns), limit, members)


def _alert(group_dn: str, *, members: int, limit: int) -> None:
    """Open the group's alert (or count it: one alert per group and burst, reminded while it stays open)."""
    pending = list(HeldRemoval.objects.filter(group_dn=group_dn, state=HeldState.PENDING).order_by("id"))
    lines = [f"  #{h.pk} {h.member_dn}" for h in pending[:LISTED]]
    if len(pending) > LISTED:
        lines.append(f"  ... and {len(pending) - LISTED} more")
    name = _name(group_dn)
    condition_raise(
        key=_key(group_dn),
        event="reconcile.removals_held",
        severity=Notification.Severity.CRITICAL,
        subject=f"Reconciler held {len(pending)} removal(s) from {name}: confirm or discard",
        body=(
            f"{len(pending)} member(s) of {group_dn} have no jitad grant, more than one run may remove "
            f"({limit} of the group's {members} members). None of them was removed:\n" + "\n".join(lines) + "\n"
            "Either someone added them outside jitad (remove them: confirm), or jitad's view is wrong "
            "(a target pointed at the wrong group, grants missing): keep them (discard) and fix the policy.\n"
            f"  manage.py jitad_held_removals list --group '{group_dn}'\n"
            f"  manage.py jitad_held_removals confirm --all-for-group '{group_dn}'\n"
            f"  manage.py jitad_held_removals discard --all-for-group '{group_dn}' --reason '...'\n"
            "or in the admin (Held removals). Grants keep working in this group meanwhile."
        ),
        link=_link(),
    )


def _resolve_if_clear(group_dn: str) -> None:
    """Close the group's alert once none of its holds waits for a decision or a removal."""
    if HeldRemoval.objects.filter(group_dn=group_dn, state__in=HeldRemoval.OPEN_STATES).exists():
        return
    counts = defaultdict(int)
    for state in HeldRemoval.objects.filter(group_dn=group_dn, state__in=[HeldState.DONE, HeldState.DISCARDED, HeldState.CLEARED],
                                            done_at__gte=timezone.now() - timedelta(days=30)).values_list("state", flat=True):
        counts[state] += 1
    summary = ", ".join(f"{n} {HeldState(state).label}" for state, n in sorted(counts.items())) or "none left"
    condition_resolve(key=_key(group_dn), event="reconcile.holds_cleared", subject=f"removals held from {_name(group_dn)}",
                      body=f"No removal from {group_dn} waits any more ({summary}).")


# -- an operator's decision ------------------------------------------------------------
@dataclass
class HoldDecision:
    """What a confirm or discard did: the rows it changed, and why it left the others alone."""

    changed: list[HeldRemoval] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def _decidable(ids, group_dn: str, *, or_discarded: bool) -> tuple[list[HeldRemoval], list[tuple[int, str]]]:
    """The holds named by id or by group that may be decided: pending ones (and, to confirm, a
    discarded one whose member is still in the group: an operator may change their mind)."""
    qs = HeldRemoval.objects.select_for_update()
    ids = sorted({int(i) for i in ids or ()})
    rows = {h.pk: h for h in qs.filter(pk__in=ids)} if ids else {}
    refused = [(i, "no such held removal") for i in ids if i not in rows]
    if group_dn:
        rows.update({h.pk: h for h in qs.filter(group_dn=group_dn, state=HeldState.PENDING)})
    chosen = []
    for pk, h in sorted(rows.items()):
        if h.state == HeldState.PENDING or (or_discarded and h.state == HeldState.DISCARDED and h.left_at is None):
            chosen.append(h)
        else:
            refused.append((pk, f"it is {h.get_state_display()}"))
    return chosen, refused


def held_removals_confirm(*, ids=(), group_dn: str = "", actor: str, reason: str = "") -> HoldDecision:
    """Confirm held removals (pending, or discarded ones whose member is still there): the worker removes them."""
    now = timezone.now()
    token = uuid.uuid4()
    with transaction.atomic():
        rows, refused = _decidable(ids, group_dn, or_discarded=True)
        entries = []
        for h in rows:
            before = h.state
            h.state, h.decided_by, h.decided_at, h.decision_reason = HeldState.CONFIRMED, actor[:150], now, reason
            h.done_at, h.outcome, h.attempts, h.next_attempt_at, h.last_error = None, "", 0, None, ""
            h.claim_token, h.lease_until = token, keeper.lease_until(now)
            h.save()
            entries.append(_entry(h, actor=actor, action="reconcile.hold_confirmed", before=before, after=HeldState.CONFIRMED,
                                  reason=reason))
        audit_record_many(entries)
        if rows:
            _enqueue([h.pk for h in rows], token)
    return HoldDecision(rows, refused)


def held_removals_discard(*, ids=(), group_dn: str = "", actor: str, reason: str = "") -> HoldDecision:
    """Discard pending held removals: the members stay, and the records remain."""
    now = timezone.now()
    with transaction.atomic():
        rows, refused = _decidable(ids, group_dn, or_discarded=False)
        entries = []
        for h in rows:
            h.state, h.decided_by, h.decided_at, h.decision_reason = HeldState.DISCARDED, actor[:150], now, reason
            h.done_at, h.outcome = now, "left in the group by an operator"
            h.save()
            entries.append(_entry(h, actor=actor, action="reconcile.hold_discarded", before=HeldState.PENDING, after=HeldState.DISCARDED,
                                  reason=reason))
        audit_record_many(entries)
        for group in sorted({h.group_dn for h in rows}):
            _resolve_if_clear(group)
    return HoldDecision(rows, refused)


# -- the worker's part (claimed work) --------------------------------------------------
def _release(ids: list[int], token: uuid.UUID) -> None:
    """Hand claimed holds back to the sweep at once (their message could not be sent)."""
    claims.release(HeldRemoval, ids, token)


def _enqueue(ids: list[int], token: uuid.UUID) -> None:
    queue.enqueue_on_commit(TASK, list(ids), str(token), on_failure=lambda: _release(ids, token))


def held_removals_sweep(*, now=None) -> int:
    """Claim confirmed holds nobody works on (a lost message, a dead worker, a retry due) and send them."""
    now = now or timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    with transaction.atomic():
        token, rows = claims.claim(HeldRemoval.objects.filter(free, ready, state=HeldState.CONFIRMED).order_by("id"),
                                   limit=settings.JITAD_SWEEP_BATCH, now=now)
        ids = [h.pk for h in rows]
        if not ids:
            return 0
        _enqueue(ids, token)
    return len(ids)


def held_removals_execute(*, ids: list[int], token) -> None:
    """Remove the confirmed members this message claims, one modify per group; each is done once."""
    mine, rows = claims.take(HeldRemoval.objects.filter(state=HeldState.CONFIRMED).order_by("id"), ids, token)
    if not rows:
        return  # a duplicate message, or another worker took it over
    by_group: dict[str, list[HeldRemoval]] = defaultdict(list)
    for h in rows:
        by_group[h.group_dn].append(h)
    with keeper.held(HeldRemoval, mine):
        try:
            with directory.session() as d:
                for group_dn, held in by_group.items():
                    try:
                        _remove(d, group_dn, held, mine)
                    except directory.DirectoryError as e:
                        _attempt_failed(held, mine, e)
                    except Exception as e:  # recorded, alerted and retried like a directory error
                        from jitad.directory import unexpected as _unexpected

                        log.exception("unexpected error while removing held members from %s", group_dn)
                        _attempt_failed(held, mine, _unexpected(e))
        except directory.DirectoryError as e:  # no DC answered at all
            _attempt_failed(rows, mine, e)


def _remove(d: directory.Directory, group_dn: str, held: list[HeldRemoval], token: uuid.UUID) -> None:
    groups = backing.managed_groups()
    outcome: dict[int, tuple[str, str]] = {}
    if group_dn not in groups:
        outcome = {h.pk: (HeldState.CLEARED, "not removed: no enabled target manages the group any more") for h in held}
        _finish(group_dn, held, token, outcome)
        return
    keep = backing.backed(group_dn) | groups[group_dn]
    read = d.group_members(group_dn)  # its SID too: the seam refuses a well-known privileged group
    present = {directory.normalize_dn(m) for m in read.members}
    to_remove = []
    for h in held:
        if h.member_key not in present:
            outcome[h.pk] = (HeldState.DONE, "already gone")
        elif h.member_key in keep:
            outcome[h.pk] = (HeldState.CLEARED, "not removed: a grant or the policy backs it now")
        else:
            to_remove.append(h)
    d.remove_members(group_dn, [h.member_dn for h in to_remove], read=read)
    # A grant may have started for one of them while we removed: put those back (as the reconciler does).
    now_backed = backing.backed(group_dn)
    for h in to_remove:
        if h.member_key in now_backed:
            d.add_member(group_dn, h.member_dn, nested_into_protected=group_nested_into_protected(group_dn))
            outcome[h.pk] = (HeldState.CLEARED, "re-added: a grant for it started during the removal")
        else:
            outcome[h.pk] = (HeldState.DONE, "removed")
    _finish(group_dn, held, token, outcome)


def _finish(group_dn: str, held: list[HeldRemoval], token: uuid.UUID, outcome: dict[int, tuple[str, str]]) -> None:
    now = timezone.now()
    with transaction.atomic():
        mine = {h.pk: h for h in HeldRemoval.objects.select_for_update().filter(id__in=[h.pk for h in held],
                                                                              claim_token=token)}
        entries = []
        for pk, h in mine.items():
            state, text = outcome[pk]
            h.state, h.outcome, h.done_at, h.claim_token, h.lease_until = state, text, now, None, None
            h.next_attempt_at, h.last_error = None, ""
            h.save()
            action = "membership.removed_held" if text == "removed" else f"reconcile.hold_{state}"
            entries.append(_entry(h, actor=ACTOR, action=action, before=HeldState.CONFIRMED, after=state, reason=text,
                                  confirmed_by=h.decided_by))
        audit_record_many(entries)
        _resolve_if_clear(group_dn)
        if conditions_open(prefix=FAILED_KEY) and not HeldRemoval.objects.filter(
                state=HeldState.CONFIRMED, attempts__gte=settings.JITAD_RETRY_MAX_ATTEMPTS).exists():
            condition_resolve(key=FAILED_KEY, event="reconcile.held_recovered", subject="confirmed removals failing",
                              body="Every confirmed removal that was failing is done.")
    log.info("held removals from %s: %s", group_dn, ", ".join(sorted({v[1] for v in outcome.values()})))


def _attempt_failed(held: list[HeldRemoval], token: uuid.UUID, error: directory.DirectoryError) -> None:
    """Record a failed attempt (the engine's ``claims.attempt_failed``: counted, retried with backoff by the
    sweep, the claim dropped); audit each, and alert once for those whose attempts ran out."""
    message = f"{type(error).__name__}: {error}"

    def report(failures: list[claims.Failed]) -> None:
        audit_record_many([_entry(f.row, actor=ACTOR, action="reconcile.hold_attempt_failed",
                                  before=HeldState.CONFIRMED, after=HeldState.CONFIRMED, reason=f.row.last_error,
                                  attempts=f.row.attempts) for f in failures])
        exhausted = [f.row for f in failures if f.exhausted]
        if exhausted:
            condition_raise(
                key=FAILED_KEY, event="reconcile.held_failed", severity=Notification.Severity.CRITICAL,
                subject=f"jitad could not carry out {len(exhausted)} confirmed removal(s): {type(error).__name__}",
                body=(f"Last error: {exhausted[0].last_error}\n" + "\n".join(f"  #{h.pk} {h.member_dn} from {h.group_dn}"
                                                                          for h in exhausted[:LISTED])
                      + "\njitad keeps retrying and says when every one is done."),
                link=_link(),
            )

    claims.attempt_failed(HeldRemoval, [h.pk for h in held], token, error=message, transient=error.transient,
                          report=report)
    log.warning("held removal attempt failed for %d member(s): %s", len(held), message)
