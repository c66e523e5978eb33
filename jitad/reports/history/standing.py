"""Standing members of servers' local Administrators, from the findings and, for earlier spells, the audit trail.

A finding (``StandingAdmin``) holds one spell per (target, SID): when a member resolved by a
scan comes back, the row is reopened with a new ``first_seen_at``. The scans audit every
finding and every resolution (``host.standing_admin_found`` / ``_gone``), so the earlier
spells, and those of findings retention deleted, are read back from those events.
"""
from django.db.models import Q

from jitad.audit.models import AuditEvent
from jitad.elevation.models import HostScan, StandingAdmin, Target

from .rows import Holding, Source, overlaps

FOUND, GONE = "host.standing_admin_found", "host.standing_admin_gone"


def _spells_from_audit(*, hi, target: Target | None, sids: list[str] | None) -> dict[tuple[int, str], list]:
    """(target id, SID) -> [[found event, gone event or None]] in time order (one query).

    Findings up to ``hi`` and every resolution: a resolution after ``hi`` closes the spell open at
    ``hi``, and one whose finding came later (after ``hi``) finds no open spell and is ignored.
    """
    qs = AuditEvent.objects.filter(Q(action=FOUND, at__lte=hi) | Q(action=GONE), object_type="target")
    if target is not None:
        qs = qs.filter(object_id=str(target.pk))
    if sids is not None:
        qs = qs.filter(data__sid__in=sids)
    spells: dict[tuple[int, str], list] = {}
    for e in qs.order_by("id").only("id", "at", "action", "object_id", "reason", "data"):
        sid = str((e.data or {}).get("sid", "")).upper() if isinstance(e.data, dict) else ""
        if not sid or not e.object_id.isdigit():
            continue
        key = (int(e.object_id), sid)
        runs = spells.setdefault(key, [])
        if e.action == FOUND:
            runs.append([e, None])
        elif runs and runs[-1][1] is None:
            runs[-1][1] = e
    return spells


def standing(*, lo, hi, target: Target | None, person) -> list[Holding]:
    """Standing members: first seen by a scan to the scan that saw them gone, or still held."""
    qs = (StandingAdmin.objects.filter(first_seen_at__lte=hi).filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=lo))
          .select_related("target").order_by("first_seen_at", "id"))
    sids = None
    if target is not None:
        qs = qs.filter(target=target)
    if person is not None:
        if not person.sids:
            return []
        sids = sorted(person.sids)
        qs = qs.filter(sid__in=sids)
    found = list(qs)
    # A scan records its findings with its own finish time (jitad.elevation.services.standing): match on it.
    stamps = {t for f in found for t in (f.first_seen_at, f.last_seen_at, f.resolved_at) if t is not None}
    scans = {}
    if found:
        for s in HostScan.objects.filter(target_id__in={f.target_id for f in found}, finished_at__in=stamps).only(
                "id", "target_id", "finished_at"):
            scans[(s.target_id, s.finished_at)] = s.pk
    who = person.username if person else None
    rows = [
        Holding(
            source=Source.STANDING, target=f.target.name, target_id=f.target_id, principal=f.name or f.sid,
            person=who, start=f.first_seen_at, end=f.resolved_at,
            ended="no longer seen by a scan" if f.resolved_at else "still seen by the last scan", record_id=f.pk,
            evidence={
                "finding_id": f.pk, "sid": f.sid, "name": f.name, "path": f.path, "is_group": f.is_group,
                "orphaned": f.orphaned, "first_seen_at": f.first_seen_at, "last_seen_at": f.last_seen_at,
                "resolved_at": f.resolved_at, "first_scan_id": scans.get((f.target_id, f.first_seen_at)),
                "last_scan_id": scans.get((f.target_id, f.last_seen_at)),
                "resolving_scan_id": scans.get((f.target_id, f.resolved_at)) if f.resolved_at else None,
            },
        )
        for f in found
    ]
    rows += _earlier_spells(lo=lo, hi=hi, target=target, sids=sids, who=who)
    return rows


def _earlier_spells(*, lo, hi, target, sids, who) -> list[Holding]:
    """Spells the audit trail knows that no finding holds: ended before the finding's current spell, or deleted."""
    spells = _spells_from_audit(hi=hi, target=target, sids=sids)
    if not spells:
        return []
    current = {(t, s.upper()): first for t, s, first in StandingAdmin.objects.filter(
        target_id__in={t for t, _ in spells}).values_list("target_id", "sid", "first_seen_at")}
    names = dict(Target.objects.filter(pk__in={t for t, _ in spells}).values_list("pk", "name"))
    rows = []
    for (tid, sid), runs in spells.items():
        since = current.get((tid, sid))
        for found_e, gone_e in runs:
            if gone_e is None or (since is not None and gone_e.at >= since):
                continue  # still open, or the finding's own spell: the row above shows it
            if not overlaps(found_e.at, gone_e.at, lo, hi):
                continue
            rows.append(Holding(
                source=Source.STANDING, target=names.get(tid), target_id=tid, principal=found_e.reason or sid,
                person=who, start=found_e.at, end=gone_e.at, ended="no longer seen by a scan (from the audit trail)",
                record_id=found_e.pk,
                evidence={"finding_id": None, "sid": sid, "name": found_e.reason, "path": found_e.data.get("path", ""),
                          "orphaned": bool(found_e.data.get("orphaned")), "found_event_id": found_e.pk,
                          "gone_event_id": gone_e.pk, "first_scan_id": None, "last_scan_id": None,
                          "resolving_scan_id": None},
            ))
    return rows
