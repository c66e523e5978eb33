"""The standing-admin scan: who is a local admin of each server without a JIT grant.

Every member of a server's local Administrators that is neither a JIT group jitad
manages, nor a domain group holding nothing but such JIT groups (the JIT group nested into
a "server admins" group that GPO puts there, docs/managed-groups.md), nor allow-listed
(JITAD_HOST_ALLOWED_ADMINS, the target's ``allowed_admins``) is standing privilege, the
thing jitad exists to remove. Findings are kept per (server,
SID), resolved when a scan no longer sees them, shown in the admin, alerted when new, and
listed by ``manage.py jitad_standing_admins``.
"""
import logging

from django.db import transaction
from django.utils import timezone

from jitad import directory, hosts
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import HostScan, StandingAdmin, Target
from . import host_checks

log = logging.getLogger(__name__)


def host_scan(*, target: Target) -> HostScan:
    """Scan one server; record the scan and its findings (an unreachable server is a failed scan, alerted once)."""
    scan = HostScan.objects.create(target=target)
    try:
        with host_checks.host_for(target) as h:
            members = h.local_admins()
        jit_groups = _jit_groups(target)
        with directory.session() as d:
            principals = d.resolve_sids(m.sid for m in members)
            carriers = {
                sid for sid, p in principals.items()
                if p.is_group and directory.normalize_dn(p.dn) not in jit_groups and _jit_only(d, p.dn, jit_groups)
            }
    except (hosts.HostError, directory.DirectoryError) as e:
        _scan_failed(scan, f"{type(e).__name__}: {e}")
        return scan
    except Exception as e:  # recorded and alerted, never an unfinished scan row
        log.exception("scan of %s failed unexpectedly", target.name)
        _scan_failed(scan, f"unexpected {type(e).__name__}: {e}")
        return scan
    patterns = host_checks.allowed_admin_patterns(target)
    standing = []
    for m in members:
        p = principals.get(m.sid)
        if p is not None and directory.normalize_dn(p.dn) in jit_groups:
            continue  # a JIT group: its members are backed by grants (the reconciler sees to that)
        if m.sid in carriers:
            continue  # holds JIT groups only: whoever is admin through it is admin through a grant
        if host_checks.allowed_admin(m.sid, patterns):
            continue
        standing.append((m, p))
    _record(scan, members, standing)
    return scan


def _jit_groups(target: Target) -> set[str]:
    """This server's own JIT group, and the groups of domain-wide roles (meant to span servers), normalised.

    Another server's JIT group here would make its grants admin on this server too: it is reported.
    A target naming a group outside the JIT OU names no JIT group: jitad does not manage it.
    """
    dns = [target.group_dn] + list(Target.objects.filter(kind=Target.Kind.DOMAIN_ROLE).values_list("group_dn", flat=True))
    return {directory.normalize_dn(dn) for dn in dns if directory.under_jit_ou(dn)}


_NESTING_READS = 50  # a carrier deeper or wider than this is reported rather than walked


def _jit_only(d: directory.Directory, group_dn: str, jit_groups: set[str]) -> bool:
    """True if ``group_dn`` holds JIT groups and nothing else, directly or through groups that do.

    An empty group, a user, a foreign principal or anything unreadable anywhere below makes
    it False: that is a way to be admin without a grant (or one that cannot be ruled out).
    """
    seen, todo, found_jit = {directory.normalize_dn(group_dn)}, [group_dn], False
    while todo:
        if len(seen) > _NESTING_READS:
            return False
        try:
            members = d.members_of(todo.pop())
        except directory.DirectoryNotFound:  # not a group: a person or a principal in its own right
            return False
        for m in members:
            key = directory.normalize_dn(m)
            if key in jit_groups:
                found_jit = True
            elif key not in seen:
                seen.add(key)
                todo.append(m)
    return found_jit


def _record(scan: HostScan, members, standing) -> None:
    now = timezone.now()
    target = scan.target
    seen = {m.sid for m, _p in standing}
    new = []
    with transaction.atomic():
        existing = {f.sid: f for f in StandingAdmin.objects.select_for_update().filter(target=target)}
        for m, p in standing:
            fields = dict(
                name=(p.name if p else m.name)[:255], path=m.path[:512], member_class=m.cls[:32],
                is_group=p.is_group if p else m.cls.lower() == "group", orphaned=m.orphaned and p is None,
                last_seen_at=now,
            )
            f = existing.get(m.sid)
            if f is None:
                f = StandingAdmin.objects.create(target=target, sid=m.sid, first_seen_at=now, **fields)
                new.append(f)
            else:
                if f.resolved_at is not None:  # back again: a new finding
                    fields.update(resolved_at=None, first_seen_at=now)
                    new.append(f)
                StandingAdmin.objects.filter(pk=f.pk).update(**fields)
                for k, v in fields.items():
                    setattr(f, k, v)
        gone = [f for sid, f in existing.items() if sid not in seen and f.resolved_at is None]
        StandingAdmin.objects.filter(pk__in=[f.pk for f in gone]).update(resolved_at=now)
        HostScan.objects.filter(pk=scan.pk).update(finished_at=now, ok=True, members=len(members), standing=len(standing))
        scan.ok, scan.members, scan.standing, scan.finished_at = True, len(members), len(standing), now
        audit_record_many(
            [AuditEntry(actor="system:scan", action="host.standing_admin_found", object_type="target",
                        object_id=str(target.pk), before="", after="standing", reason=f.name,
                        data={"target": target.name, "sid": f.sid, "path": f.path, "orphaned": f.orphaned})
             for f in new]
            + [AuditEntry(actor="system:scan", action="host.standing_admin_gone", object_type="target",
                          object_id=str(target.pk), before="standing", after="", reason=f.name,
                          data={"target": target.name, "sid": f.sid})
               for f in gone]
        )
        if new:
            lines = "\n".join(f"- {f.name} ({f.sid}){' [orphaned SID]' if f.orphaned else ''}" for f in new)
            alert_raise(
                event="host.standing_admins", severity=Notification.Severity.WARNING,
                subject=f"Standing admins on {target.name}: {len(new)} new",
                body=(f"{target.name}'s local Administrators has members no JIT grant explains:\n{lines}\n"
                      "Remove them, move the people to jitad, or allow-list a service account on the target."),
                object_type="target", object_id=target.pk,
            )


def _scan_failed(scan: HostScan, message: str) -> None:
    now = timezone.now()
    target = scan.target
    with transaction.atomic():
        previous_ok = HostScan.objects.filter(target=target).exclude(pk=scan.pk).order_by("-started_at").values_list(
            "ok", flat=True).first()
        HostScan.objects.filter(pk=scan.pk).update(finished_at=now, ok=False, error=message[:2000])
        scan.ok, scan.error, scan.finished_at = False, message[:2000], now
        if previous_ok is not False:  # alert when a server stops answering, not on every scan after
            alert_raise(
                event="host.scan_failed", severity=Notification.Severity.WARNING,
                subject=f"Cannot scan {target.name}'s local Administrators",
                body=f"The standing-admin scan of {target.name} failed: {message}\nGrants of this target cannot be verified either.",
                object_type="target", object_id=target.pk,
            )
    log.warning("scan of %s failed: %s", target.name, message)
