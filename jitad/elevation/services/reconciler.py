"""Find members of managed JIT groups that no grant backs, remove them, and alert."""
import hashlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.engine.services import lease_release, lease_take, pulse_mark
from jitad.health.checks import directory_unreachable_raise
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise, condition_raise, condition_resolve

from ..models import GroupReading
from ..selectors import backing
from ..selectors.targets import group_nested_into_protected
from ..signals import group_read
from . import held_removals
from .grant_ephemeral import ephemeral_orphans_reconcile
from .unmanaged import group_not_managed_raise, not_managed_conditions_resolve

log = logging.getLogger(__name__)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _joined_since_last_run(group_dn: str, members: set[str]) -> frozenset[str]:
    """Normalised DNs of ``members`` that were not in the group at the previous run (``GroupReading``).

    Empty when there is no reading, or only one older than a reconcile run may take
    (jitad stopped reconciling, or the database was restored): then nobody counts as new.
    """
    reading = GroupReading.objects.filter(group_key=_hash(directory.normalize_dn(group_dn))).first()
    fresh_since = timezone.now() - timedelta(seconds=max(300.0, 5 * settings.JITAD_RECONCILE_INTERVAL))
    if reading is None or reading.read_at < fresh_since:
        return frozenset()
    before = set(reading.members)
    keys = (directory.normalize_dn(m) for m in members)
    return frozenset(k for k in keys if _hash(k)[:16] not in before)


def _reading_record(group_dn: str, members: set[str], read_at) -> None:
    """Remember who is in the group now (after this run's removals), for the next run's comparison."""
    hashes = sorted({_hash(directory.normalize_dn(m))[:16] for m in members})
    digest = _hash("".join(hashes))
    key = _hash(directory.normalize_dn(group_dn))
    if not GroupReading.objects.filter(group_key=key, digest=digest).update(read_at=read_at):
        GroupReading.objects.update_or_create(
            group_key=key, defaults={"group_dn": group_dn[:512], "members": hashes, "digest": digest, "read_at": read_at})


class ProtectedGroup(directory.DirectoryNotManaged):
    """The group is under the JIT OU but is privileged: its members are not the reconciler's to judge."""


def _protection(group_dn: str, read: directory.GroupMembers) -> str:
    """Why the reconciler must leave this group's members alone ('' when it may judge them)."""
    number = directory.rid(read.sid)
    if number in directory.PROTECTED_RIDS:
        return f"it is a well-known privileged group (RID {number})"
    if read.admin_count and not group_nested_into_protected(group_dn):
        return "it is a protected group (adminCount=1) and no target marks it nested_into_protected"
    return ""


def reconcile_group(d: directory.Directory, group_dn: str, allowed: set[str]) -> list[str]:
    """Remove unbacked members of one group; return the DNs removed.

    Raises DirectoryNotManaged before reading anything when the group is not under the JIT
    OU: its members are not jitad's to judge, nor to hold for an operator. Raises it too,
    after reading the group but before removing or holding anyone, when the group is a
    well-known privileged group (Domain Admins moved under the JIT OU and named by a
    tampered target), or is adminCount=1 and no target marks it nested_into_protected.
    """
    directory.require_managed(group_dn, "reconcile the members of", ous=directory.jit_ous(d.config.jit_ou))
    # Members first, grants second: a grant's DN is committed before its add, so any
    # member we read that a grant backs is visible in the read that follows.
    read_at = timezone.now()
    read = d.group_members(group_dn)
    refused = _protection(group_dn, read)
    if refused:
        raise ProtectedGroup(group_dn, f"jitad does not reconcile the members of {group_dn!r}: {refused}")
    members = set(read.members)
    joined = _joined_since_last_run(group_dn, members)
    backed = backing.backed(group_dn)
    extra = sorted(m for m in members if directory.normalize_dn(m) not in backed | allowed)
    # Robust: a listener's failure (the reports' baseline) must never stop a reconcile.
    for _receiver, outcome in group_read.send_robust(
            sender=reconcile_group, group_dn=group_dn, members=len(members), unbacked=len(extra), read_at=read_at):
        if isinstance(outcome, Exception):
            log.warning("a group_read listener failed: %s", outcome)
    # Too many long-standing members at once are held for an operator instead (a runaway
    # reconcile is an outage); members who joined since the last run are removed whatever their number.
    extra = held_removals.holds_screen(group_dn=group_dn, members=members, extra=extra, joined=joined)
    if not extra:
        _reading_record(group_dn, members, read_at)
        return []
    d.remove_members(group_dn, extra, read=read)
    # A grant may have started for one of them while we removed: put those back.
    now_backed = backing.backed(group_dn)
    for dn in extra:
        if directory.normalize_dn(dn) in now_backed:
            d.add_member(group_dn, dn, nested_into_protected=group_nested_into_protected(group_dn))
    removed = [dn for dn in extra if directory.normalize_dn(dn) not in now_backed]
    _reading_record(group_dn, members - set(removed), read_at)
    if removed:
        with transaction.atomic():
            audit_record_many(
                [
                    AuditEntry(actor="system:reconciler", action="membership.removed_unbacked", object_type="group",
                               object_id=group_dn[:64], before="member", after="removed",
                               reason="member of a JIT group without a grant", data={"group": group_dn, "member": dn})
                    for dn in removed
                ]
            )
            alert_raise(
                event="reconcile.out_of_band",
                severity=Notification.Severity.CRITICAL,
                subject=f"Out-of-band admin membership removed from {directory.group_label(group_dn)}",
                body=(
                    f"{len(removed)} member(s) of {group_dn} had no jitad grant and were removed:\n"
                    + "\n".join(f"  {dn}" for dn in removed)
                    + "\nSomeone added them outside jitad: find out who (the DC's security log, event 4728/4756)."
                ),
                object_type="group",
                object_id=group_dn[:64],
            )
    return removed


def _reconcile_each(d: directory.Directory, groups: dict[str, set[str]], *, between=lambda: None) -> tuple[
        dict[str, list[str]], set[str], bool]:
    """Run :func:`reconcile_group` on each of ``groups``; a group that fails is logged (alerted when it
    will not pass by itself) and left for the next run.

    Returns the members removed per group, the groups refused as not jitad's (their condition
    raised), and whether a group failed for a transient reason. ``between`` runs before each group.
    """
    result, refused, transient = {}, set(), False
    for group_dn, allowed in groups.items():
        between()
        try:
            result[group_dn] = reconcile_group(d, group_dn, allowed)
        except directory.DirectoryNotManaged as e:  # skipped, members left as they are, alerted once
            log.warning("reconcile %s skipped: %s", group_dn, e)
            refused.add(group_dn)
            with transaction.atomic():
                group_not_managed_raise(group_dn=group_dn, error=e, by="reconciler",
                                        privileged=isinstance(e, ProtectedGroup))
        except directory.DirectoryError as e:
            log.warning("reconcile %s failed: %s", group_dn, e)
            transient = transient or e.transient
            if not e.transient:
                _alert_unreadable(group_dn, e)
    return result, refused, transient


RECONCILED = "reconcile"  # a pulse: a full run went through every managed group (or there was none)


def reconcile() -> dict[str, list[str]]:
    """Reconcile every managed group; a group that fails is logged and retried next run.

    When no DC answers the run stops with one log line and the one ``directory.unreachable``
    condition the watchdog also raises (counted while it is open, resolved by the watchdog
    when a DC answers): never a traceback, never an alert per run.
    """
    groups = backing.managed_groups()
    if not groups:
        _cannot_run_resolve()
        pulse_mark(name=RECONCILED)
        return {}
    try:
        with directory.connect() as d:
            result, refused, _transient = _reconcile_each(d, groups)
    except directory.DirectoryUnavailable as e:
        log.warning("reconcile skipped this run: %s", e)
        with transaction.atomic():
            directory_unreachable_raise(detail=str(e))
        return {}
    except directory.DirectoryError as e:  # the DC refused jitad's bind, or its settings are wrong
        log.error("reconcile cannot run: %s", e)
        with transaction.atomic():
            condition_raise(
                key=CANNOT_RUN, event=CANNOT_RUN, severity=Notification.Severity.CRITICAL,
                subject="The reconciler cannot run: out-of-band admins are not removed",
                body=(f"{type(e).__name__}: {e}\n"
                      "No managed group is checked until this is fixed (an expired or changed bind password, a "
                      "locked service account, a wrong JITAD_LDAP_* setting); grants and revocations meet the same "
                      "error (JITAD_LDAP_* in ops/jitad.env.example; the service account in docs/managed-groups.md)."),
            )
        return {}
    not_managed_conditions_resolve(still=refused)
    _cannot_run_resolve()
    pulse_mark(name=RECONCILED)  # the watchdog alerts when this stops moving (services.watch)
    return result


def reconcile_changed(d: directory.Directory, group_dns, *, holder: str,
                      lease_seconds: float) -> dict[str, list[str]] | None:
    """The per-group entry point (the group watch's): reconcile those of ``group_dns`` that are managed
    groups, or every managed group when ``group_dns`` is None, on the bound ``d``.

    The same check, removal, brake, audit and alerts as a full run, group by group. It holds
    the lease ``reconcile`` as ``holder`` (renewed before each group) so it never judges a
    group beside a running reconcile. None when it could not do it all: that lease is held
    elsewhere, or a group failed for a transient reason; the caller then asks again later for
    the same groups. Groups refused or unreadable for good are alerted as a full run does,
    and count as done.
    """
    groups = backing.managed_groups()
    if group_dns is not None:
        wanted = {directory.normalize_dn(dn) for dn in group_dns}
        groups = {dn: allowed for dn, allowed in groups.items() if directory.normalize_dn(dn) in wanted}
    if not groups:
        return {}
    if not lease_take(name=RECONCILE_LEASE, holder=holder, seconds=lease_seconds):
        log.info("changed groups not checked yet: a reconcile is running")
        return None

    def renew():
        lease_take(name=RECONCILE_LEASE, holder=holder, seconds=lease_seconds)

    try:
        result, _refused, transient = _reconcile_each(d, groups, between=renew)
    finally:
        lease_release(name=RECONCILE_LEASE, holder=holder)
    return None if transient else result


CANNOT_RUN = "reconcile.cannot_run"


def _cannot_run_resolve() -> None:
    condition_resolve(key=CANNOT_RUN, event=f"{CANNOT_RUN}.resolved",
                      subject="The reconciler cannot run: out-of-band admins are not removed",
                      body="The reconciler runs again: it binds and checks the managed groups, or has none to check.")


def _alert_unreadable(group_dn: str, error: directory.DirectoryError) -> None:
    """A managed group jitad cannot check (deleted, misnamed, no rights): alert, at most hourly."""
    key = group_dn[:64]
    recent = timezone.now() - timedelta(hours=1)
    if Notification.objects.filter(event="reconcile.group_unreadable", object_id=key, created_at__gte=recent).exists():
        return
    with transaction.atomic():
        alert_raise(
            event="reconcile.group_unreadable",
            severity=Notification.Severity.CRITICAL,
            subject=f"jitad cannot check the JIT group {directory.group_label(group_dn)}",
            body=(
                f"The reconciler could not read {group_dn}: {error}\n"
                "Out-of-band members of this group are not being removed. Check that the group exists "
                "and that the target's group DN in the policy file is right."
            ),
            object_type="group",
            object_id=key,
        )


RECONCILE_LEASE = "reconcile"


def reconcile_once() -> dict[str, list[str]] | None:
    """Run :func:`reconcile` unless another process is running it; None when it was skipped.

    Single-flight through the engine's lease ``reconcile``: a run that outlasts the interval,
    or two schedulers sending the task at once, never makes two reconciles race on the same
    groups (and on their held removals). The lease outlives a run that dies mid-way only
    until it lapses (five intervals, at least five minutes, as long as the task may wait).
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    seconds = max(300.0, 5 * settings.JITAD_RECONCILE_INTERVAL)
    if not lease_take(name=RECONCILE_LEASE, holder=holder, seconds=seconds):
        log.info("reconcile skipped: another process is running it")
        return None
    try:
        result = reconcile()
        try:
            ephemeral_orphans_reconcile()
        except directory.DirectoryError as e:  # no DC answered: reconcile() has said so already
            log.warning("ephemeral accounts not checked for orphans: %s", e)
        return result
    finally:
        lease_release(name=RECONCILE_LEASE, holder=holder)
