"""A grant's timeline: its request, the decisions, every audited step, and what its account did on the server.

One list, oldest first, merged from four kinds of record: the request (and extension requests)
with their approvals, the audit trail of the grant and its requests (any ``grant.*`` action,
named or not, so a new action shows without a change here), the ephemeral account's fields
when no audit event tells of them, and the Security log events of the grant (``SessionEvent``).
A constant number of queries whatever the counts; the session events shown are capped
(``SESSION_LIMIT``): the flagged ones first (after the grant's end, a cleared log), then the
oldest, and ``Timeline.more`` says how many the page leaves to the export.
"""
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Prefetch, Q

from jitad.audit.models import AuditEvent
from jitad.humantime import minutes_text, when

from ..models import AccessRequest, Approval, Grant, SessionEvent

SESSION_LIMIT = 200  # on a page; the export has up to EXPORT_SESSION_LIMIT
EXPORT_SESSION_LIMIT = 50_000
AUDIT_LIMIT = 1000  # a grant's audit trail is short; a retry loop gone wild must not make the page unbounded

Kind = SessionEvent.Kind

# What the requests' own rows already say (the request, each decision): their audit events would repeat them.
# Shown from their own rows, not from their audit records: a request and its approvals, and each
# Security log event (stored as a SessionEvent and recorded in the audit chain for the SIEM).
REQUEST_ACTIONS_SHOWN_FROM_ROWS = ("request.created", "request.approval_recorded", "grant.session_event")

# Audit actions in words; any other action is shown by its name ("grant.some_step" -> "some step").
ACTION_WORDS = {
    "grant.created": "grant created",
    "grant.scheduled": "scheduled",
    "grant.waiting": "waiting for the target to be free",
    "grant.started": "its start time came",
    "grant.granting": "adding to the AD group",
    "grant.active": "AD membership added",
    "grant.unverified": "in the AD group, not verified on the server",
    "grant.verify_failed": "server check failed, retrying",
    "grant.verify_gave_up": "server checks gave up",
    "grant.grant_failed": "could not be granted",
    "grant.extended": "extended",
    "grant.ttl_refresh_refused": "membership TTL refresh refused",
    "grant.revoke_requested": "revocation requested",
    "grant.revoking": "removing from the AD group",
    "grant.revoked": "AD membership removed",
    "grant.revoke_failed": "could not be revoked, retrying",
    "grant.host_verified": "server confirmed the right gone",
    "grant.host_still_admin": "still admin on the server by another path",
    "grant.host_failed": "server could not be checked",
    "grant.host_check_failed": "server check failed, retrying",
    "grant.host_check_gave_up": "server checks gave up",
    "grant.account_created": "ephemeral account created",
    "grant.account_disabled": "ephemeral account disabled",
    "grant.account_deleted": "ephemeral account deleted",
    "grant.account_revealed": "ephemeral account's password shown",
    "grant.account_delete_failed": "ephemeral account not deleted yet",
    "grant.session_signal": "signal",
    "grant.evidence_finished": "server's Security log read to the end",
    "grant.evidence_cut": "server's Security log: too many events, cut",
    "grant.evidence_failed": "server's Security log could not be read, retrying",
    "grant.evidence_gave_up": "server's Security log could not be read",
    "request.approved": "request approved",
    "request.denied": "request denied",
    "request.cancelled": "request cancelled",
    "request.escalated": "request escalated",
    "request.stage_opened": "approval stage opened",
    "request.stage_passed": "approval stage passed",
    "request.stage_auto_approved": "approval stage approved automatically",
    "request.expired_unapproved": "nobody decided in time",
}
FLAGGED_ACTIONS = frozenset({
    "grant.unverified", "grant.verify_gave_up", "grant.grant_failed", "grant.revoke_failed", "grant.host_still_admin",
    "grant.host_failed", "grant.host_check_gave_up", "grant.ttl_refresh_refused", "grant.session_signal",
    "grant.account_delete_failed", "grant.evidence_gave_up", "grant.evidence_cut",
})

# Windows logon types (4624's LogonType), as the Security log's documentation names them.
LOGON_TYPES = {
    2: "Interactive", 3: "Network", 4: "Batch", 5: "Service", 7: "Unlock", 8: "NetworkCleartext",
    9: "NewCredentials", 10: "RemoteInteractive", 11: "CachedInteractive", 12: "CachedRemoteInteractive",
    13: "CachedUnlock",
}


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: when, what kind of record, who did it, what happened, and the detail.

    ``kind`` is "request", "approval", "audit", "account" or "session"; ``ref`` names the record
    (the audit action, or the event id and log record); ``flagged`` marks what needs a look
    (a failure, a right still held, an event after the grant's end, a cleared log).
    """

    at: datetime
    kind: str
    who: str
    what: str
    detail: str = ""
    flagged: bool = False
    ref: str = ""
    event: SessionEvent | None = field(default=None, compare=False, repr=False)


@dataclass
class SessionCounts:
    """How many Security log events the grant has: all, logons, processes, after its end, log clearings."""

    events: int = 0
    logons: int = 0
    processes: int = 0
    after_end: int = 0
    cleared: int = 0


@dataclass
class Timeline:
    """A grant's entries, oldest first, with its session counts and how many events were left out."""

    grant: Grant
    entries: list[TimelineEntry]
    counts: SessionCounts
    sessions_shown: int
    audit_truncated: bool = False

    @property
    def more(self) -> int:
        """Session events not in ``entries`` (the export has them)."""
        return self.counts.events - self.sessions_shown


# Same time: the request before its decisions, the decisions before what the engine did, the server last.
_ORDER = {"request": 0, "approval": 1, "audit": 2, "account": 3, "session": 4}


def _request_entries(grant: Grant, requests: list[AccessRequest]) -> list[TimelineEntry]:
    out = []
    for r in requests:
        who = r.requester.get_username()
        if r.kind == AccessRequest.Kind.EXTENSION:
            what = f"extension requested (#{r.pk}, {minutes_text(r.duration_minutes)} more)"
        else:
            what = f"access requested (#{r.pk}, {minutes_text(r.duration_minutes)})"
        parts = []
        if r.ticket:
            parts.append(f"ticket {r.ticket}")
        if r.justification:
            parts.append(r.justification)
        out.append(TimelineEntry(at=r.created_at, kind="request", who=who, what=what, detail=": ".join(parts),
                                 ref=f"request #{r.pk}"))
        for a in r.approvals.all():
            word = "approved" if a.decision == Approval.Decision.APPROVE else "denied"
            stage = f" (stage {a.stage + 1})" if len(r.stages or []) > 1 else ""
            name = a.approver.get_username()
            if a.on_behalf_of_id:
                name += f" for {a.on_behalf_of.get_username()}"
            out.append(TimelineEntry(at=a.at, kind="approval", who=name, what=f"{word}{stage}", detail=a.comment,
                                     flagged=a.decision == Approval.Decision.DENY, ref=f"request #{r.pk}"))
    return out


def action_words(action: str) -> str:
    """An audit action in words: the known ones as written above, any other by its name."""
    if action in ACTION_WORDS:
        return ACTION_WORDS[action]
    return action.partition(".")[2].replace("_", " ") or action


def _audit_detail(e: AuditEvent) -> str:
    data = e.data or {}
    parts = [e.reason] if e.reason else []
    if e.action == "grant.active" and data.get("host_check"):
        parts.append(f"verified on the server: {data['host_check']}")
    if e.action == "grant.revoked" and data.get("membership_removed") is False:
        parts.append("another grant still backs the membership")
    for key, label in (("expires_at", "until"), ("starts_at", "starts")):
        if data.get(key) and e.action in ("grant.created", "grant.extended", "grant.scheduled"):
            parts.append(f"{label} {_time_text(data[key])}")
    if data.get("account"):
        parts.append(f"account {data['account']}")
    return "; ".join(str(p) for p in parts if p)


def _time_text(value) -> str:
    """An ISO 8601 time from an audit event's data as people read it (the text itself if it is not one)."""
    try:
        return when(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)


def _audit_entries(events: list[AuditEvent]) -> list[TimelineEntry]:
    out = []
    for e in events:
        what = action_words(e.action)
        if e.action == "grant.active" and (e.data or {}).get("host_check"):
            what += ", verified on the server"
        out.append(TimelineEntry(at=e.at, kind="audit", who=e.actor, what=what, detail=_audit_detail(e),
                                 flagged=e.action in FLAGGED_ACTIONS, ref=e.action))
    return out


def _account_entries(grant: Grant, seen: set[str]) -> list[TimelineEntry]:
    """The ephemeral account's times from the grant's fields, when the audit trail does not already tell them."""
    if not grant.account:
        return []
    name = grant.account_sam or "the ephemeral account"
    out = []
    if grant.account_revealed_at and "grant.account_revealed" not in seen:
        out.append(TimelineEntry(at=grant.account_revealed_at, kind="account", who=grant.user.get_username(),
                                 what=action_words("grant.account_revealed"), detail=name, ref="account_revealed_at"))
    if grant.account_deleted_at and "grant.account_deleted" not in seen:
        out.append(TimelineEntry(at=grant.account_deleted_at, kind="account", who="system:engine",
                                 what=action_words("grant.account_deleted"), detail=name, ref="account_deleted_at"))
    return out


def session_words(e: SessionEvent) -> str:
    """A Security log event as people read it: "logon (RemoteInteractive, from 10.0.0.5)", "process C:\\...\\cmd.exe"."""
    if e.event_id in (Kind.LOGON, Kind.LOGOFF):
        word = "logon" if e.event_id == Kind.LOGON else "logoff"
        how = [LOGON_TYPES.get(e.logon_type, f"type {e.logon_type}")] if e.logon_type is not None else []
        if e.source and e.source not in ("-", "::1", "127.0.0.1"):
            how.append(f"from {e.source}")
        return f"{word} ({', '.join(how)})" if how else word
    if e.event_id == Kind.PROCESS:
        return f"process {e.process}" if e.process else "process created"
    if e.event_id == Kind.SPECIAL_PRIVILEGES:
        return "admin privileges given to the logon"
    if e.event_id in (Kind.GROUP_MEMBER_ADDED, Kind.GROUP_MEMBER_REMOVED):
        word = "added to" if e.event_id == Kind.GROUP_MEMBER_ADDED else "removed from"
        return f"{e.member or 'a member'} {word} local group {e.target_sid or '?'}"
    if e.event_id in (Kind.ACCOUNT_CREATED, Kind.ACCOUNT_DELETED):
        return f"{e.get_event_id_display()} {e.target_sid}".strip()
    return e.get_event_id_display() if e.event_id in Kind.values else f"event {e.event_id}"


def _session_entry(grant: Grant, e: SessionEvent) -> TimelineEntry:
    if e.sid and e.sid == grant.account_sid:
        who = grant.account_sam or e.sid
    elif e.sid and e.sid == grant.user_sid:
        who = grant.user.get_username()
    else:
        who = e.sid
    detail = [f"on {e.host}"]
    if e.logon_id:
        detail.append(f"logon id {e.logon_id}")
    if e.after_end:
        detail.append("after the grant ended")
    return TimelineEntry(at=e.at, kind="session", who=who, what=session_words(e), detail=", ".join(detail),
                         flagged=e.after_end or e.event_id == Kind.LOG_CLEARED, ref=f"{e.event_id}#{e.record}",
                         event=e)


def session_counts(grant: Grant) -> SessionCounts:
    """The grant's session events counted (one query)."""
    counted = SessionEvent.objects.filter(grant=grant).aggregate(
        events=Count("id"),
        logons=Count("id", filter=Q(event_id=Kind.LOGON)),
        processes=Count("id", filter=Q(event_id=Kind.PROCESS)),
        after_end=Count("id", filter=Q(after_end=True)),
        cleared=Count("id", filter=Q(event_id=Kind.LOG_CLEARED)),
    )
    return SessionCounts(**counted)


def _session_events(grant: Grant, total: int, limit: int | None) -> list[SessionEvent]:
    """At most ``limit`` events (None: all): the flagged ones first, then the oldest (one or two queries)."""
    qs = SessionEvent.objects.filter(grant=grant).order_by("at", "record")
    if total == 0:
        return []
    if limit is None or total <= limit:
        return list(qs)
    flagged_q = Q(after_end=True) | Q(event_id=Kind.LOG_CLEARED)
    flagged = list(qs.filter(flagged_q)[:limit])
    rest = list(qs.exclude(flagged_q)[: limit - len(flagged)]) if len(flagged) < limit else []
    return flagged + rest


def grant_timeline(grant: Grant, *, limit: int | None = SESSION_LIMIT) -> Timeline:
    """``grant``'s timeline, oldest first, with at most ``limit`` session events (None: all); at most seven queries."""
    requests = list(
        AccessRequest.objects.filter(Q(pk=grant.request_id) | Q(extends_id=grant.pk))
        .select_related("requester")
        .prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("approver", "on_behalf_of")
                                   .order_by("at", "id")))
    )
    objects = Q(object_type="grant", object_id=str(grant.pk)) | Q(
        object_type="request", object_id__in=[str(r.pk) for r in requests])
    audit = list(AuditEvent.objects.filter(objects).exclude(action__in=REQUEST_ACTIONS_SHOWN_FROM_ROWS)
                 .order_by("seq")[: AUDIT_LIMIT + 1])
    truncated = len(audit) > AUDIT_LIMIT
    audit = audit[:AUDIT_LIMIT]
    counts = session_counts(grant)
    events = _session_events(grant, counts.events, limit)

    entries = _request_entries(grant, requests) + _audit_entries(audit)
    entries += _account_entries(grant, {e.action for e in audit})
    entries += [_session_entry(grant, e) for e in events]
    entries.sort(key=lambda x: (x.at, _ORDER[x.kind]))
    return Timeline(grant=grant, entries=entries, counts=counts, sessions_shown=len(events), audit_truncated=truncated)
