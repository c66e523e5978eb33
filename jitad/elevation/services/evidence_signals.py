"""Signals in a grant's session evidence: each recorded once (``SessionSignal``), audited and alerted.

* a logon (4624) of the grant's accounts after the grant ended: the revocation did not take (critical);
* the Security log cleared (1102) in the grant's evidence window (critical);
* a logon from a source address outside the target's ``logon_sources`` (warning);
* the grant ended and its final read found no logon in its window: the elevation was never used
  (informational: a candidate to stop granting).

Called by the collection (services/evidence.py) inside the transaction that stores the events.
One alert per grant and kind per read, however many events raised it: a burst of logons after
the end is one message that counts them, and every one of them is a signal row.
"""
import ipaddress
from collections import defaultdict
from datetime import datetime

from jitad.audit.services import audit_record_many
from jitad.hosts import SecurityEvent
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import Grant, SessionEvent, SessionSignal
from ..selectors.evidence import grant_end, grant_used, other_grant_covers
from .grant_work import _admin_link, _entry

ACTOR = "system:evidence"
Kind = SessionSignal.Kind
SEVERITY = {
    Kind.LOGON_AFTER_END: Notification.Severity.CRITICAL,
    Kind.LOG_CLEARED: Notification.Severity.CRITICAL,
    Kind.UNEXPECTED_SOURCE: Notification.Severity.WARNING,
    Kind.UNUSED: Notification.Severity.INFO,
}


def _networks(target) -> list:
    out = []
    for cidr in target.logon_sources or []:
        try:
            out.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            continue  # the model's validation refuses these; an old row is not a reason to fail
    return out


def _outside(source: str, networks: list) -> bool:
    """A logon's address outside every expected network. No address, or a local one (the console), is not judged."""
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return not any(address.version == n.version and address in n for n in networks)


def signals_for_events(*, grant: Grant, events: list[SecurityEvent], stored: dict[int, SessionEvent],
                       now: datetime) -> list[SessionSignal]:
    """Record the signals these newly read events raise for ``grant``; returns the new ones.

    ``stored`` maps a record to its SessionEvent (an event past the per-grant cap is not stored,
    and its signal names the record instead).
    """
    end = grant_end(grant)
    networks = _networks(grant.target)
    sids = {s.upper() for s in grant.sids}
    found = []
    for e in events:
        mine = e.sid.upper() in sids
        if e.id == SessionEvent.Kind.LOGON and mine and e.at > end:
            if e.sid.upper() == grant.user_sid.upper() and other_grant_covers(grant, e.at):
                continue  # granted again meanwhile: the logon is the newer grant's right
            found.append((Kind.LOGON_AFTER_END, e, f"{grant.target.name}: logon of {e.sid} (type {e.logon_type}, "
                          f"from {e.source or 'no address'}) at {e.at:%Y-%m-%d %H:%M:%S} UTC, after grant #{grant.pk} "
                          f"ended at {end:%Y-%m-%d %H:%M:%S} UTC: the revocation did not take"))
        elif e.id == SessionEvent.Kind.LOG_CLEARED:
            when = "after the grant ended" if e.at > end else "during the grant"
            found.append((Kind.LOG_CLEARED, e, f"{grant.target.name}: the Security log was cleared at "
                          f"{e.at:%Y-%m-%d %H:%M:%S} UTC {when} (by {e.sid or 'an unknown account'})"))
        if e.id == SessionEvent.Kind.LOGON and mine and networks and e.source and _outside(e.source, networks):
            found.append((Kind.UNEXPECTED_SOURCE, e, f"{grant.target.name}: logon of {e.sid} from {e.source}, outside "
                          f"the expected networks {', '.join(str(n) for n in networks)}"))
    return _record(grant, [(kind, e.record, stored.get(e.record), e.at, detail) for kind, e, detail in found], now)


def signal_unused(*, grant: Grant, now: datetime) -> list[SessionSignal]:
    """The final read is done: no logon of the grant's accounts in its window is a signal (never used)."""
    if grant.activated_at is None or grant_used(grant):
        return []
    detail = (f"{grant.target.name}: no logon of {grant.user.get_username()}'s accounts during grant #{grant.pk} "
              f"({grant.activated_at:%Y-%m-%d %H:%M} to {grant_end(grant):%Y-%m-%d %H:%M} UTC): the elevation was "
              "never used; a candidate to stop granting")
    return _record(grant, [(Kind.UNUSED, 0, None, grant_end(grant), detail)], now)


def _record(grant: Grant, found: list, now: datetime) -> list[SessionSignal]:
    if not found:
        return []
    have = set(SessionSignal.objects.filter(grant=grant, kind__in={f[0] for f in found},
                                            record__in={f[1] for f in found}).values_list("kind", "record"))
    rows, seen = [], set()
    for kind, record, event, at, detail in found:
        if (kind, record) in have or (kind, record) in seen:
            continue
        seen.add((kind, record))
        rows.append(SessionSignal(grant=grant, kind=kind, record=record, event=event, severity=SEVERITY[kind], at=at,
                                  raised_at=now, detail=detail[:4000]))
    if not rows:
        return []
    SessionSignal.objects.bulk_create(rows)
    audit_record_many([_entry(grant, actor=ACTOR, action="grant.session_signal", before="", after=s.kind,
                              reason=s.detail, kind=s.kind, record=s.record, severity=s.severity, at=s.at.isoformat())
                       for s in rows])
    by_kind: dict[str, list[SessionSignal]] = defaultdict(list)
    for s in rows:
        by_kind[s.kind].append(s)
    for kind, signals in by_kind.items():
        _alert(grant, kind, signals)
    return rows


def _alert(grant: Grant, kind: str, signals: list[SessionSignal]) -> None:
    who, where = grant.user.get_username(), grant.target.name
    subject = {
        Kind.LOGON_AFTER_END: f"{who} logged on to {where} after grant #{grant.pk} ended: the revocation did not take",
        Kind.LOG_CLEARED: f"The Security log of {where} was cleared (grant #{grant.pk} of {who})",
        Kind.UNEXPECTED_SOURCE: f"{who} logged on to {where} from an unexpected address (grant #{grant.pk})",
        Kind.UNUSED: f"{who} never used grant #{grant.pk} on {where}",
    }[kind]
    more = f"\n({len(signals)} events; every one is listed in the admin's session signals.)" if len(signals) > 1 else ""
    alert_raise(event=f"grant.session_{kind}", severity=SEVERITY[kind], subject=subject,
                body="\n".join(s.detail for s in signals[:10]) + more, link=_admin_link(grant), object_type="grant",
                object_id=grant.pk, digest_kind="elevation never used" if kind == Kind.UNUSED else "",
                person=who)
