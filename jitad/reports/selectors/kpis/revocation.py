"""Revocation success: grants removed automatically, on time and ever; lateness; revoke_failed episodes; host checks."""
import math

from django.conf import settings
from django.db.models import F
from django.db.models.functions import Coalesce, Least

from jitad.audit.models import AuditEvent
from jitad.elevation.models import Grant

from ...figures import Chart, Column, Figure, Section, Table
from .common import ID_CHUNK, MAX_ROWS, Epoch, Scope, histogram, moment, pct, records, seconds

DEFINITION = (
    "Grants that became active and whose end fell in the period: the end is the expiry, or the moment an "
    "early release or an administrator's revoke was asked for, whichever came first. Ever: the membership "
    "is verified removed (revoked_at). On time: removed within JITAD_REPORT_REVOKE_SLA_SECONDS of the end. "
    "Automatic: removed with no revoke_failed episode. Late: removed after the SLA, or not removed and "
    "past it. revoke_failed episodes: grant.revoke_failed audit events in the period, and how the grant "
    "ended. Host-confirmed: of removed grants checked on the server, the share the server confirmed."
)

LATENESS_EDGES = [(1, "< 1 s"), (10, "1–10 s"), (60, "10–60 s"), (300, "1–5 min"), (3600, "5–60 min"),
                  (math.inf, "≥ 1 h")]


def _ended(scope: Scope) -> list[tuple]:
    """(id, due, removed or None, state, host check) of grants whose end fell in the period; times in epoch seconds."""
    hi = min(scope.end, scope.now)
    due = Least(F("expires_at"), Coalesce(F("revoke_requested_at"), F("expires_at")))
    return list(
        Grant.objects.filter(scope.grants_q(), activated_at__isnull=False)
        .annotate(due=due).filter(due__gte=scope.start, due__lt=hi).order_by()
        .values_list("id", Epoch(due), Epoch("revoked_at"), "state", "host_revoke_check")
    )


def _failed_events(scope: Scope) -> list[tuple]:
    """(event id, grant id, at) of every grant.revoke_failed event since the period began (one query)."""
    rows = AuditEvent.objects.filter(action="grant.revoke_failed", object_type="grant",
                                     at__gte=scope.start).values_list("id", "object_id", "at")
    return [(eid, int(obj), at) for eid, obj, at in rows if obj.isdigit()]


def section(scope: Scope) -> Section:
    """The revocation section: shares, lateness histogram, late grants, revoke_failed episodes."""
    sla = settings.JITAD_REPORT_REVOKE_SLA_SECONDS
    ended = _ended(scope)
    events = _failed_events(scope)
    # The grants behind the events, within the scope: their state and removal (a query per ID_CHUNK ids: a DC
    # outage during a mass expiry leaves as many events as grants, and a statement takes 65,535 parameters).
    behind = sorted({e[1] for e in events})
    outcome = {i: (st, rv) for k in range(0, len(behind), ID_CHUNK) for i, st, rv in Grant.objects.filter(
        scope.grants_q(), id__in=behind[k:k + ID_CHUNK]).values_list("id", "state", "revoked_at")}
    episodes = [e for e in events if e[2] < scope.end and e[1] in outcome]
    ended_ids = {g[0] for g in ended}
    # An ended grant's revoke_failed episodes follow its end, so they are all among ``events``.
    failed_once = {e[1] for e in events if e[1] in ended_ids}
    removed = [g for g in ended if g[2] is not None]
    lateness = {g[0]: round(g[2] - g[1], 1) for g in removed}
    on_time = [i for i, s in lateness.items() if s <= sla]
    automatic = [g[0] for g in removed if g[0] not in failed_once]
    now_s = scope.now.timestamp()
    late = []  # (seconds late, grant id, removed?, due, state)
    for gid, due, revoked, state, _check in ended:
        late_by = lateness[gid] if revoked is not None else round(now_s - due, 1)
        if late_by > sla:
            late.append((late_by, gid, revoked is not None, due, state))
    late.sort(key=lambda r: (-r[0], r[1]))
    names = {i: (u, t) for i, u, t in Grant.objects.filter(id__in=[r[1] for r in late[:MAX_ROWS]])
             .values_list("id", "user__username", "target__name")} if late else {}
    late_rows = [{"grant": gid, "user": names.get(gid, ("", ""))[0], "target": names.get(gid, ("", ""))[1],
                  "due": moment(due).isoformat(), "late_s": by, "removed": removed, "state": state}
                 for by, gid, removed, due, state in late[:MAX_ROWS]]
    checked = [g for g in removed if g[4]]
    confirmed = [g[0] for g in checked if g[4] == Grant.HostCheck.VERIFIED]
    n = len(ended)
    figures = [
        Figure("ended", "Grants that ended", n if n else None, records=records("elevation.grant", ended_ids)),
        Figure("automatic_pct", "Removed automatically (no failed episode)", pct(len(automatic), n), "%",
               records("elevation.grant", automatic)),
        Figure("on_time_pct", f"Removed within {sla} s of the end", pct(len(on_time), n), "%",
               records("elevation.grant", on_time)),
        Figure("ever_pct", "Removed at all", pct(len(removed), n), "%", records("elevation.grant", [g[0] for g in removed])),
        Figure("late", "Late removals", len(late) if n else None, records=records("elevation.grant",
                                                                                [r[1] for r in late])),
        Figure("revoke_failed_episodes", "revoke_failed episodes", len(episodes) if (n or episodes) else None,
               records=records("audit.auditevent", [e[0] for e in episodes])),
        Figure("host_confirmed_pct", "Removals confirmed on the server", pct(len(confirmed), len(checked)), "%",
               records("elevation.grant", [g[0] for g in checked])),
    ]
    hist = histogram(lateness.values(), LATENESS_EDGES)
    lateness_table = Table(
        key="lateness", title="End → membership removed",
        columns=[Column("bucket", "Removed after"), Column("grants", "Grants")],
        rows=[{"bucket": b, "grants": c} for b, c in hist.items()], chart=Chart("histogram", "bucket", ("grants",)),
    )
    late_table = Table(
        key="late", title="Late removals (latest first)",
        columns=[Column("grant", "Grant"), Column("user", "Person"), Column("target", "Target"), Column("due", "Due"),
                 Column("late_s", "Late by", "s"), Column("removed", "Removed"), Column("state", "State")],
        rows=late_rows,
        records={i: records("elevation.grant", [r["grant"]]) for i, r in enumerate(late_rows)},
    )
    ep_rows = []
    for eid, gid, at in sorted(episodes, key=lambda e: e[2]):
        state, done = outcome[gid]
        ep_rows.append({"grant": gid, "at": at.isoformat(), "outcome": "removed" if done else state,
                        "recovered_after_s": seconds(done - at) if done else None})
    episodes_table = Table(
        key="revoke_failed", title="revoke_failed episodes and how they ended",
        columns=[Column("grant", "Grant"), Column("at", "Failed at"), Column("outcome", "Outcome"),
                 Column("recovered_after_s", "Removed after", "s")],
        rows=ep_rows[:MAX_ROWS],
        records={i: records("elevation.grant", [r["grant"]]) for i, r in enumerate(ep_rows[:MAX_ROWS])},
    )
    return Section("revocation", "Revocation success", DEFINITION, figures,
                   [lateness_table, late_table, episodes_table])
