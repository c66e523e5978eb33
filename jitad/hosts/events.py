"""The session-evidence contract of security_events.ps1: what may be asked, and what an answer must be.

``events_input`` checks a request before anything is sent (HostError) and gives the script's
input; ``events_result`` checks the script's answer field by field (HostScriptFailed). The
transport (running the script over WinRM) stays in client.py.
"""
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import HostError, HostScriptFailed
from .sids import is_account_sid, is_sid

SECURITY_EVENT_IDS = frozenset({4624, 4634, 4647, 4672, 4688, 4720, 4726, 4732, 4733, 1102})
MAX_SECURITY_SIDS = 10
MAX_SECURITY_EVENTS = 5000


@dataclass(frozen=True)
class SecurityEvent:
    """One Security log event about a user (or a log clearing, 1102), as security_events.ps1 gives it."""

    id: int
    at: datetime  # aware, UTC
    record: int
    sid: str  # the SID it matched ("" only for a 1102 without a subject)
    logon_type: int | None
    source: str  # IpAddress
    logon_id: str  # TargetLogonId, else SubjectLogonId (hex)
    process: str  # NewProcessName (4688)
    member: str  # MemberSid (4732, 4733)
    target: str  # TargetSid (4720, 4726, 4732, 4733)


@dataclass(frozen=True)
class SecurityEvents:
    """A host's Security log events for some SIDs in a window; ``truncated`` when the bound cut it."""

    events: tuple[SecurityEvent, ...]
    truncated: bool


def events_input(*, sids, start: datetime, end: datetime, max_events: int) -> dict:
    """The script's input for these SIDs and window, or HostError before anything is sent."""
    sids = list(sids) if isinstance(sids, (list, tuple)) else None
    if not sids or len(sids) > MAX_SECURITY_SIDS:
        raise HostError(f"refusing to ask a host for the events of more than {MAX_SECURITY_SIDS} SIDs, or of none")
    for sid in sids:
        if not is_account_sid(sid):
            raise HostError(f"refusing to send {sid!r} to a host: not a SID of a person's account")
    for t in (start, end):
        if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
            raise HostError(f"refusing a time without a time zone: {t!r}")
    if not start < end:
        raise HostError("refusing a window whose start is not before its end")
    if isinstance(max_events, bool) or not isinstance(max_events, int) or not 1 <= max_events <= MAX_SECURITY_EVENTS:
        raise HostError(f"max_events must be an integer from 1 to {MAX_SECURITY_EVENTS}, not {max_events!r}")
    return {"sids": sids, "start": _iso_utc(start), "end": _iso_utc(end), "max": max_events}


def _iso_utc(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def events_result(result: dict, sids: list[str], max_events: int) -> SecurityEvents:
    """security_events.ps1's result, checked field by field; anything else is HostScriptFailed."""
    wanted = {s.upper() for s in sids}

    def bad(why: str) -> HostScriptFailed:
        return HostScriptFailed(f"security_events returned an unexpected result ({why}): {str(result)[:200]!r}")

    raw, truncated = result.get("events"), result.get("truncated")
    if isinstance(raw, dict):  # a one-element array written as its element
        raw = [raw]
    if raw is None:
        raw = []
    if not isinstance(raw, list) or not isinstance(truncated, bool) or len(raw) > max_events:
        raise bad("no event list")
    events = []
    for e in raw:
        if not isinstance(e, dict):
            raise bad("an event is not an object")
        eid, record, logon_type = e.get("id"), e.get("record"), e.get("logon_type")
        texts = {k: e.get(k) for k in ("sid", "source", "logon_id", "process", "member", "target")}
        if (type(eid) is not int or eid not in SECURITY_EVENT_IDS or type(record) is not int
                or not (logon_type is None or type(logon_type) is int)
                or not all(isinstance(v, str) for v in texts.values())):
            raise bad("an event's fields")
        if eid != 1102 and texts["sid"].upper() not in wanted:
            raise bad("an event of a SID not asked for")
        if texts["sid"] and not is_sid(texts["sid"]):
            raise bad("an event's SID")
        try:
            at = datetime.fromisoformat(e.get("at"))
        except (TypeError, ValueError):
            raise bad("an event's time") from None
        if at.utcoffset() is None:
            raise bad("an event's time has no time zone")
        events.append(SecurityEvent(id=eid, at=at.astimezone(timezone.utc), record=record,
                                    logon_type=logon_type, **texts))
    events.sort(key=lambda ev: (ev.at, ev.record))
    return SecurityEvents(events=tuple(events), truncated=truncated)
