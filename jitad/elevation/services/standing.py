"""The standing-admin scan: who is a local admin of each server without a JIT grant.

Every member of a server's local Administrators that is neither a JIT group jitad
manages nor allow-listed (JITAD_HOST_ALLOWED_ADMINS, the target's ``allowed_admins``) is
standing privilege, the thing jitad exists to remove. Findings are kept per (server,
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


def scannable_targets():
    return Target.objects.filter(enabled=True).exclude(winrm_url="")


def host_scan(*, target: Target) -> HostScan:
    """Scan one server; record the scan and its findings (an unreachable server is a failed scan, alerted once)."""
    scan = HostScan.objects.create(target=target)
    try:
        with host_checks.host_for(target) as h:
            members = h.local_admins()
        with directory.session() as d:
            principals = d.resolve_sids(m.sid for m in members)
    except (hosts.HostError, directory.DirectoryError) as e:
        _scan_failed(scan, f"{type(e).__name__}: {e}")
        return scan
    except Exception as e:  # recorded and alerted, never an unfinished scan row
        log.exception("scan of %s failed unexpectedly", target.name)
        _scan_failed(scan, f"unexpected {type(e).__name__}: {e}")
        return scan
    # This server's own JIT group, and the groups of domain-wide roles (meant to span servers).
    # Another server's JIT group here would make its grants admin on this server too: report it.
    jit_groups = {directory.normalize_dn(target.group_dn)} | {
        directory.normalize_dn(dn)
        for dn in Target.objects.filter(kind=Target.Kind.DOMAIN_ROLE).values_list("group_dn", flat=True)
    }
    patterns = host_checks.allowed_admin_patterns(target)
    standing = []
    for m in members:
        p = principals.get(m.sid)
        if p is not None and directory.normalize_dn(p.dn) in jit_groups:
            continue  # a JIT group: its members are backed by grants (the reconciler sees to that)
        if host_checks.allowed_admin(m.sid, patterns):
            continue
        standing.append((m, p))
    _record(scan, members, standing)
    return scan


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
