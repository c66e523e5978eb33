"""Risk signals: always-on people, unused eligibility, off-hours activations, failure bursts, out-of-band members, break-glass."""
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model

from jitad.audit.models import AuditEvent
from jitad.breakglass.models import Checkout
from jitad.elevation.models import AccessRequest, Grant, HeldRemoval, Policy, Target
from jitad.elevation.selectors.workflow import off_hours

from ...figures import Column, Figure, Section, Table
from .common import ID_CHUNK, MAX_ROWS, Epoch, Scope, WorkingHours, moment, range_query, records
from .intervals import scope_grants
from .reviews import review_outcomes
from .risk_evidence import evidence_signals
from .risk_people import always_on, unused_eligible

DEFINITION = (
    "Always on: people elevated for at least JITAD_REPORT_ALWAYS_ON_SHARE_PCT of the period's working hours, or "
    "on JITAD_REPORT_ALWAYS_ON_DAYS consecutive days. Unused eligible: people an enabled policy makes eligible who "
    "made no request in JITAD_REPORT_UNUSED_DAYS before the period's end. Off-hours: grants activated outside "
    "working hours: the policy's own time windows where it has some (outside their 'policy' and 'auto' hours), "
    "else JITAD_REPORT_WORK_*, JITAD_REPORT_TIME_ZONE. Bursts: at least JITAD_REPORT_BURST_THRESHOLD "
    "denied or failed requests by one person within JITAD_REPORT_BURST_WINDOW_MINUTES. Out of band: members the "
    "reconciler removed or held because no grant backed them. Break-glass: checkouts opened in the period. "
    "Session signals: what the servers' Security logs showed for grants in scope (docs/hosts.md, 'Session "
    "evidence'), counted by when it happened: logons after a grant ended, logs cleared, logons from outside the "
    "target's expected networks, grants never used; unknown (empty) when no grant in scope had its server read. "
    "Eligibility reviews: reviews closed in the period, and their people kept, removed by reviewers, and removed "
    "by default (nobody decided before the deadline)."
)


def _bursts(scope: Scope) -> list[dict]:
    window = settings.JITAD_REPORT_BURST_WINDOW_MINUTES * 60.0
    threshold = settings.JITAD_REPORT_BURST_THRESHOLD
    period = {"created_at__gte": scope.start, "created_at__lt": scope.end}
    denied = AccessRequest.objects.filter(scope.requests_q(), state=AccessRequest.State.DENIED, **period).order_by() \
        .values_list("id", "requester_id", Epoch("created_at"))
    failed = Grant.objects.filter(scope.grants_q(), state=Grant.State.GRANT_FAILED,
                                  **{f"request__{k}": v for k, v in period.items()}).order_by() \
        .values_list("request_id", "user_id", Epoch("request__created_at"))
    rows = sorted({*denied, *failed}, key=lambda r: (r[1], r[2], r[0]))
    out, i = [], 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][1] == rows[i][1] and rows[j][2] - rows[i][2] <= window + 1e-3:
            j += 1
        if j - i >= threshold:
            out.append({"user_id": rows[i][1], "start": moment(rows[i][2]).isoformat(),
                        "end": moment(rows[j - 1][2]).isoformat(), "requests": j - i, "ids": [r[0] for r in rows[i:j]]})
            i = j
        else:
            i += 1
    names = dict(get_user_model().objects.filter(id__in={b["user_id"] for b in out}).values_list("id", "username")) \
        if out else {}
    for b in out:
        b["user"] = names.get(b["user_id"], str(b["user_id"]))
    return sorted(out, key=lambda b: b["start"])


def _out_of_band(scope: Scope) -> list[dict]:
    groups = None
    if scope.target_ids is not None:
        groups = {g.lower() for g in Target.objects.filter(id__in=scope.target_ids).values_list("group_dn", flat=True)}
    events = AuditEvent.objects.filter(action="membership.removed_unbacked", at__gte=scope.start,
                                       at__lt=scope.end).values_list("id", "at", "data")
    held = HeldRemoval.objects.filter(held_at__gte=scope.start, held_at__lt=scope.end).values_list(
        "id", "held_at", "group_dn", "member_dn", "state")
    rows = [{"at": at.isoformat(), "group": (data or {}).get("group", ""), "member": (data or {}).get("member", ""),
             "outcome": "removed", "model": "audit.auditevent", "id": eid} for eid, at, data in events]
    rows += [{"at": at.isoformat(), "group": g, "member": m, "outcome": f"held ({state})",
              "model": "elevation.heldremoval", "id": hid} for hid, at, g, m, state in held]
    if groups is not None:
        rows = [r for r in rows if r["group"].lower() in groups]
    return sorted(rows, key=lambda r: r["at"])


def _breakglass(scope: Scope) -> list[dict] | None:
    """Checkouts opened in the period; None when a filter names targets (break-glass accounts have none)."""
    if scope.target is not None or scope.policy is not None or scope.tier not in (None, 0):
        return None
    rows = Checkout.objects.filter(opened_at__gte=scope.start, opened_at__lt=scope.end).order_by("opened_at") \
        .values_list("id", "account__name", "holder__username", "mode", "incident_ref", "opened_at", "checkin_at")
    return [{"id": i, "account": a, "holder": h, "mode": m, "incident": inc, "opened": o.isoformat(),
             "checked_in": c.isoformat() if c else None} for i, a, h, m, inc, o, c in rows]


def _off_hours(activations: list[tuple[int, float]], wh: WorkingHours) -> list[tuple[int, float]]:
    """Activations outside working hours: a grant under a policy with time windows is judged by them
    (selectors.workflow.off_hours), any other by the reports' working hours. One query for the
    policies with windows, one more only when there are some."""
    windowed = {p.pk: p for p in Policy.objects.exclude(time_windows={})}
    policy_of = {}
    if windowed and activations:
        ids = [i for i, _a in activations]  # a query per ID_CHUNK: a statement takes 65,535 parameters
        policy_of = {i: p for k in range(0, len(ids), ID_CHUNK) for i, p in Grant.objects.filter(
            id__in=ids[k:k + ID_CHUNK], request__policy_id__in=list(windowed)).values_list("id", "request__policy_id")}
    out = []
    for i, a in activations:
        policy = windowed.get(policy_of.get(i))
        if policy is not None:
            if off_hours(policy, moment(a)):
                out.append((i, a))
        elif not wh.contains(a):
            out.append((i, a))
    return out


def _table(key, title, columns, rows, model=None, ids_key=None):
    recs = {}
    for i, r in enumerate(rows[:MAX_ROWS]):
        rec = records(model or r.get("model"), r[ids_key] if isinstance(r[ids_key], list) else [r[ids_key]])
        if rec is not None:
            recs[i] = rec
    shown = [{c.key: r.get(c.key) for c in columns} for r in rows[:MAX_ROWS]]
    return Table(key=key, title=title, columns=columns, rows=shown, records=recs)


def section(scope: Scope) -> Section:
    """The risk section: ten counts, each with the list behind it."""
    wh = WorkingHours().prepare(scope.start.timestamp(), max(scope.start, min(scope.end, scope.now)).timestamp())
    grants = scope_grants(scope)
    on = always_on(scope, grants, wh)
    unused_n, unused = unused_eligible(scope)
    start_s, end_s = scope.start.timestamp(), scope.end.timestamp()
    activations = sorted((a, i) for i, _u, _t, a, _e in grants if start_s <= a < end_s)
    activations = [(i, a) for a, i in activations]
    off_ids = _off_hours(activations, wh)
    names = {i: (u, t) for i, u, t in Grant.objects.filter(id__in=[i for i, _a in off_ids[:MAX_ROWS]])
             .values_list("id", "user__username", "target__name")} if off_ids else {}
    off = [{"grant": i, "activated": moment(a).isoformat(), "local": datetime.fromtimestamp(a, wh.tz).strftime("%a %H:%M"),
            "user": names.get(i, ("", ""))[0], "target": names.get(i, ("", ""))[1]} for i, a in off_ids[:MAX_ROWS]]
    bursts = _bursts(scope)
    oob = _out_of_band(scope)
    bg = _breakglass(scope)
    off_all = [i for i, _a in off_ids]
    had_requests = bool(grants) or bool(bursts) or AccessRequest.objects.filter(
        scope.requests_q(), created_at__gte=scope.start, created_at__lt=scope.end).exists()
    oob_events = [r["id"] for r in oob if r["model"] == "audit.auditevent"]
    figures = [
        Figure("always_on", "Always-on people", len(on) if grants else None,
               records=records("elevation.grant", [g for r in on for g in r["grant_ids"]])),
        Figure("unused_eligible", "Eligible people who never use it", unused_n,
               records=records("auth.user", [r["user_id"] for r in unused])),
        Figure("off_hours_activations", "Activations outside working hours", len(off_all) if activations else None,
               records=records("elevation.grant", off_all,
                               fallback=range_query("activated_at", scope))),
        Figure("request_bursts", "Bursts of denied or failed requests", len(bursts) if had_requests else None,
               records=records("elevation.accessrequest", [i for b in bursts for i in b["ids"]])),
        Figure("out_of_band", "Out-of-band members found by the reconciler", len(oob),
               records=records("audit.auditevent", oob_events) or records(
                   "elevation.heldremoval", [r["id"] for r in oob if r["model"] == "elevation.heldremoval"])),
        Figure("breakglass_checkouts", "Break-glass checkouts opened", None if bg is None else len(bg),
               records=None if not bg else records("breakglass.checkout", [r["id"] for r in bg])),
    ]
    session_figures, session_table = evidence_signals(scope)
    figures += session_figures
    tables = [
        _table("always_on", "Always-on people", [
            Column("user", "Person"), Column("working_share_pct", "Share of working hours elevated", "%"),
            Column("longest_run_days", "Longest run of days"), Column("days_elevated", "Days elevated"),
            Column("grants", "Grants")], on, "elevation.grant", "grant_ids"),
        _table("unused_eligible", "Eligible people who never use it (candidates to remove)", [
            Column("user", "Person"), Column("last_login", "Last login")], unused, "auth.user", "user_id"),
        _table("off_hours", "Activations outside working hours", [
            Column("activated", "Activated (UTC)"), Column("local", "Local time"), Column("user", "Person"),
            Column("target", "Target")], off, "elevation.grant", "grant"),
        _table("bursts", "Bursts of denied or failed requests", [
            Column("user", "Person"), Column("start", "From"), Column("end", "To"), Column("requests", "Requests")],
            bursts, "elevation.accessrequest", "ids"),
        _table("out_of_band", "Out-of-band members", [
            Column("at", "Found"), Column("group", "Group"), Column("member", "Member"), Column("outcome", "Outcome")],
            oob, None, "id"),
        _table("breakglass", "Break-glass checkouts", [
            Column("account", "Account"), Column("holder", "Holder"), Column("mode", "Mode"),
            Column("incident", "Incident"), Column("opened", "Opened"), Column("checked_in", "Checked in")],
            bg or [], "breakglass.checkout", "id"),
        review_outcomes(scope),
        session_table,
    ]
    return Section("risk", "Risk signals", DEFINITION, figures, tables)
