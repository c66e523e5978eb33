"""A grant's evidence written out: JSON (the grant, its request, counts, the timeline and every session event) and CSV.

The portal (for the requester) and the admin (for approvers and auditors) download the same
files. The export is not capped like the page: it holds up to ``EXPORT_SESSION_LIMIT`` session
events and says how many it left out beyond that. CSV cells go through
``jitad.formats.spreadsheet``, so a justification or a process path that starts with ``=`` is
text in a spreadsheet, never a formula.
"""
import json
from datetime import datetime

from django.http import HttpResponse

from jitad.formats.spreadsheet import csv_text

from .models import Grant, SessionEvent
from .selectors.timeline import EXPORT_SESSION_LIMIT, Timeline, grant_timeline

CSV_COLUMNS = ["at", "kind", "who", "what", "detail", "flagged", "ref", "host", "record", "event_id", "sid",
               "logon_type", "source", "logon_id", "process", "member", "target_sid", "after_end", "collected_at"]
SESSION_FIELDS = CSV_COLUMNS[7:]


def evidence_timeline(grant: Grant) -> Timeline:
    """The timeline an export writes: every session event up to the export's bound."""
    return grant_timeline(grant, limit=EXPORT_SESSION_LIMIT)


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _event(e: SessionEvent | None) -> dict:
    if e is None:
        return {}
    return {name: _iso(getattr(e, name)) for name in SESSION_FIELDS}


def evidence_dict(timeline: Timeline) -> dict:
    """The grant, its request, the session counts and the timeline (each session entry with its raw event) as plain data."""
    g, req = timeline.grant, timeline.grant.request
    c = timeline.counts
    grant = {
        "id": g.pk, "user": g.user.get_username(), "target": g.target.name, "host": g.target.hostname,
        "group_dn": g.group_dn, "state": g.state, "created_at": _iso(g.created_at), "starts_at": _iso(g.starts_at),
        "activated_at": _iso(g.activated_at), "expires_at": _iso(g.expires_at), "revoked_at": _iso(g.revoked_at),
        "revoke_reason": g.revoke_reason, "revoke_requested_by": g.revoke_requested_by,
        "revoke_comment": g.revoke_comment, "host_verified_at": _iso(g.host_verified_at),
        "host_revoke_check": g.host_revoke_check, "extensions": g.extensions,
    }
    if g.account:
        grant["account"] = {"state": g.account, "sam": g.account_sam, "dn": g.account_dn, "sid": g.account_sid,
                            "revealed_at": _iso(g.account_revealed_at), "deleted_at": _iso(g.account_deleted_at)}
    return {
        "grant": grant,
        "request": {"id": req.pk, "requester": req.requester.get_username(), "policy": req.policy.name,
                    "justification": req.justification, "ticket": req.ticket, "created_at": _iso(req.created_at),
                    "decided_at": _iso(req.decided_at)},
        "session_counts": {"events": c.events, "logons": c.logons, "processes": c.processes,
                           "after_end": c.after_end, "log_cleared": c.cleared},
        "session_events_left_out": timeline.more,
        "audit_truncated": timeline.audit_truncated,
        "timeline": [
            {"at": _iso(x.at), "kind": x.kind, "who": x.who, "what": x.what, "detail": x.detail, "flagged": x.flagged,
             "ref": x.ref, **({"event": _event(x.event)} if x.event is not None else {})}
            for x in timeline.entries
        ],
    }


def evidence_json(timeline: Timeline) -> str:
    """``evidence_dict`` as indented JSON."""
    return json.dumps(evidence_dict(timeline), indent=2, ensure_ascii=False) + "\n"


def evidence_csv(timeline: Timeline) -> str:
    """One row per timeline entry; a session event's row also has the event's own fields."""
    rows = []
    for x in timeline.entries:
        raw = _event(x.event)
        rows.append([_iso(x.at), x.kind, x.who, x.what, x.detail, x.flagged, x.ref]
                    + [raw.get(name) for name in SESSION_FIELDS])
    return csv_text(CSV_COLUMNS, rows)


def evidence_response(timeline: Timeline, fmt: str) -> HttpResponse:
    """The evidence as a download: ``csv``, else JSON (the portal's and the admin's links answer alike)."""
    if fmt == "csv":
        body, content_type = evidence_csv(timeline), "text/csv; charset=utf-8"
    else:
        fmt, body, content_type = "json", evidence_json(timeline), "application/json"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="jitad-grant-{timeline.grant.pk}-evidence.{fmt}"'
    return response
