"""Session evidence: read each grant's Security log events from its server, store them, raise signals.

A grant on a WinRM-managed target that went live gets an ``EvidencePull`` (claimed work, found
by ``evidence_sweep``). The sweep (single-flight, beat every JITAD_EVIDENCE_SWEEP_INTERVAL)
claims due pulls and sends one message per server; the execution reads the server once for
the grants of that server (their SIDs batched, at most 10 per call) from the last read on,
stores each new event once per grant (``SessionEvent``, unique per record), records it in the
audit chain (and so in the SIEM stream), raises the signals (services/evidence_signals.py),
and schedules the next read: every JITAD_EVIDENCE_INTERVAL_SECONDS during the grant and after
it, a last one JITAD_EVIDENCE_AFTER_MINUTES past its end, then the pull is finished.

Bounded: at most JITAD_EVIDENCE_MAX_EVENTS_PER_CALL events per call (a cut answer is read on
from its last event's time; a window the bound keeps cutting without progress is halved down to
a second, then skipped and recorded), at most MAX_CALLS calls per server and run, and at most
JITAD_EVIDENCE_MAX_EVENTS_PER_GRANT events stored per grant (the pull is then marked ``cut``;
signals are still raised from what is read). A server that does not answer is retried with the
engine's backoff; the pull is given up (alerted once) on a failure retrying cannot fix, or once
its attempts ran out and the evidence window is over. Pulls are rows of their own on the "hosts"
queue: a slow or dead server never holds a grant's claim or a revocation.
"""
import logging
import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jitad import hosts
from jitad.hosts.events import MAX_SECURITY_SIDS
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.engine import claims, keeper, queue
from jitad.engine.services import lease_release, lease_take, pulse_mark
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import EvidencePull, Grant, SessionEvent
from ..selectors.evidence import collect_until, grant_end, grant_start, grants_without_pull, pulls_due
from .evidence_signals import ACTOR, signal_unused, signals_for_events
from .grant_work import _admin_link
from .host_checks import host_for

log = logging.getLogger(__name__)
LEASE = "evidence-sweep"
TASK = "jitad.elevation.evidence_pull"
OVERLAP = timedelta(seconds=60)  # each read starts this much before the last one ended: a late write is not missed
MAX_CALLS = 50  # calls to one server in one run; the rest of the window is read by the next run
SMALLEST_WINDOW = timedelta(seconds=1)


# --- the sweep ------------------------------------------------------------------------
def pulls_create(*, now: datetime | None = None) -> int:
    """A pull for every grant on a WinRM-managed target that went live and has none yet; returns how many."""
    now = now or timezone.now()
    made = 0
    for g in grants_without_pull(now).order_by("pk")[: settings.JITAD_SWEEP_BATCH]:
        try:
            with transaction.atomic():
                EvidencePull.objects.create(grant=g, created_at=now, read_through=grant_start(g), next_attempt_at=now)
        except IntegrityError:
            continue  # created meanwhile by another sweep
        made += 1
    return made


def pulls_send(*, now: datetime | None = None) -> int:
    """Claim the due pulls and send one message per server; returns how many pulls were claimed."""
    now = now or timezone.now()
    token, rows = claims.claim(pulls_due(now).select_related("grant"), limit=settings.JITAD_SWEEP_BATCH, now=now)
    by_target: dict[int, list[int]] = defaultdict(list)
    for p in rows:
        by_target[p.grant.target_id].append(p.pk)
    for ids in by_target.values():
        queue.enqueue(TASK, ids, str(token), on_failure=lambda ids=ids: claims.release(EvidencePull, ids, token))
    return len(rows)


def evidence_sweep(*, now: datetime | None = None) -> dict | None:
    """One sweep: create the pulls of newly live grants, send the due ones. None when another process runs one."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not lease_take(name=LEASE, holder=holder, seconds=max(60.0, 5 * settings.JITAD_EVIDENCE_SWEEP_INTERVAL)):
        log.info("evidence sweep skipped: another process is running it")
        return None
    try:
        created = pulls_create(now=now)
        sent = pulls_send(now=now)
        pulse_mark(name=LEASE)
        return {"created": created, "sent": sent}
    finally:
        lease_release(name=LEASE, holder=holder)


# --- reading a server -----------------------------------------------------------------
@dataclass
class Read:
    """What one run read from a server for some SIDs: the events, how far, and what it had to skip."""

    events: list = field(default_factory=list)
    reached: datetime | None = None
    calls: int = 0
    skipped: list = field(default_factory=list)  # (start, end) windows the server's bound kept cutting


def read_window(h: hosts.Host, *, sids: list[str], start: datetime, end: datetime) -> Read:
    """Read ``sids``' events from ``start`` to ``end``, going on past every cut answer, within MAX_CALLS calls."""
    limit = settings.JITAD_EVIDENCE_MAX_EVENTS_PER_CALL
    out = Read(reached=start)
    cursor, upto = start, end
    while cursor < end and out.calls < MAX_CALLS:
        got = h.security_events(sids=sids, start=cursor, end=upto, max_events=limit)
        out.calls += 1
        out.events.extend(got.events)
        if not got.truncated:
            cursor, upto = upto, end
        elif got.events and got.events[-1].at > cursor:
            cursor = got.events[-1].at  # on from the last event kept; its second is read again, stored once
        elif upto - cursor > SMALLEST_WINDOW:
            upto = cursor + (upto - cursor) / 2  # other accounts' events filled the bound: a smaller window
        else:
            out.skipped.append((cursor, upto))
            cursor, upto = upto, end
        out.reached = cursor
    return out


# --- the execution --------------------------------------------------------------------
def evidence_pulls_execute(*, pull_ids: list[int], token) -> None:
    """Read the claimed pulls' server (one message is one server) and record what it says."""
    mine, pulls = claims.take(EvidencePull.objects.select_related("grant__user", "grant__target"), pull_ids, token)
    if not pulls:
        return
    with keeper.held(EvidencePull, mine):
        by_target: dict[int, list[EvidencePull]] = defaultdict(list)
        for p in pulls:
            by_target[p.grant.target_id].append(p)
        for target_pulls in by_target.values():
            for chunk in _chunks(target_pulls):
                _pull(chunk, mine)


def _chunks(pulls: list[EvidencePull]) -> list[list[EvidencePull]]:
    """Pulls grouped so each group's SIDs fit one call (hosts.events.MAX_SECURITY_SIDS)."""
    out, sids = [], set()
    for p in pulls:
        own = {s.upper() for s in p.grant.sids}
        if out and len(sids | own) <= MAX_SECURITY_SIDS:
            out[-1].append(p)
            sids |= own
        else:
            out.append([p])
            sids = set(own)
    return out


def _pull(pulls: list[EvidencePull], token: uuid.UUID) -> None:
    now = timezone.now()
    target = pulls[0].grant.target
    sids = sorted({s for p in pulls for s in p.grant.sids})
    start = max(min(p.read_through for p in pulls) - OVERLAP, min(grant_start(p.grant) for p in pulls))
    end = min(now, max(collect_until(p.grant) for p in pulls))
    read = Read(reached=end)
    if start < end:
        try:
            with host_for(target) as h:
                read = read_window(h, sids=sids, start=start, end=end)
        except hosts.HostError as e:
            _failed(pulls, token, e)
            return
        except Exception as e:  # a bug: recorded and alerted as a permanent failure, never a silent loop
            log.exception("evidence read on %s failed unexpectedly", target.name)
            _failed(pulls, token, hosts.HostError(f"unexpected {type(e).__name__}: {e}"))
            return
    _record(pulls, token, read, now)


def _record(pulls: list[EvidencePull], token: uuid.UUID, read: Read, now: datetime) -> None:
    with transaction.atomic():
        held = set(EvidencePull.objects.select_for_update().filter(pk__in=[p.pk for p in pulls], claim_token=token)
                   .values_list("pk", flat=True))
        for p in pulls:
            if p.pk in held:
                _record_one(p, read, now)


def _record_one(p: EvidencePull, read: Read, now: datetime) -> None:
    g = Grant.objects.select_related("user", "target").get(pk=p.grant_id)  # its end may have moved since the claim
    until, end, start = collect_until(g), grant_end(g), grant_start(g)
    sids = {s.upper() for s in g.sids}
    mine = {e.record: e for e in read.events
            if start <= e.at <= until and (e.id == SessionEvent.Kind.LOG_CLEARED or e.sid.upper() in sids)}
    have = set(SessionEvent.objects.filter(grant=g, record__in=list(mine)).values_list("record", flat=True))
    new = sorted((e for r, e in mine.items() if r not in have), key=lambda e: (e.at, e.record))
    room = max(0, settings.JITAD_EVIDENCE_MAX_EVENTS_PER_GRANT - p.stored)
    kept, dropped = new[:room], new[room:]
    rows = SessionEvent.objects.bulk_create([
        SessionEvent(grant=g, host=g.target.name, record=e.record, event_id=e.id, at=e.at, sid=e.sid,
                     logon_type=e.logon_type, source=e.source[:64], logon_id=e.logon_id[:32], process=e.process[:1024],
                     member=e.member[:184], target_sid=e.target[:184], after_end=e.at > end, collected_at=now)
        for e in kept])
    stored = {r.record: r for r in SessionEvent.objects.filter(grant=g, record__in=[e.record for e in kept])}
    # The SIEM stream is the audit chain: one record per stored event, in the transaction that stores it.
    entries = [_event_entry(g, stored[e.record]) for e in kept if e.record in stored]
    cut = []
    if dropped:
        cut.append(f"{len(dropped)} event(s) past the cap of {settings.JITAD_EVIDENCE_MAX_EVENTS_PER_GRANT} not "
                   f"stored ({dropped[0].at:%Y-%m-%d %H:%M:%S} to {dropped[-1].at:%Y-%m-%d %H:%M:%S} UTC)")
    for a, b in read.skipped:
        if a < until and b > start:
            cut.append(f"events from {a:%Y-%m-%d %H:%M:%S} to {b:%Y-%m-%d %H:%M:%S} UTC not read: more than "
                       f"{settings.JITAD_EVIDENCE_MAX_EVENTS_PER_CALL} in a second")
    reached = min(read.reached or now, until)
    finished = reached >= until
    p.read_through = max(p.read_through, reached)
    p.reads += read.calls
    p.stored += len(rows)
    p.attempts, p.last_error, p.claim_token, p.lease_until = 0, "", None, None
    if cut:
        first_cut = not p.cut
        p.cut = True
        p.cut_detail = "\n".join([*filter(None, [p.cut_detail]), *cut])[-4000:]
        entries.append(AuditEntry(actor=ACTOR, action="grant.evidence_cut", object_type="grant", object_id=str(g.pk),
                                  reason="; ".join(cut), data={"target": g.target.name, "first": first_cut}))
    if finished:
        p.finished_at, p.next_attempt_at = now, None
    elif reached < min(now, until):
        p.next_attempt_at = now  # the run's calls ran out: the rest of the window at the next sweep
    else:
        p.next_attempt_at = min(now + timedelta(seconds=settings.JITAD_EVIDENCE_INTERVAL_SECONDS), max(until, now))
    p.save(update_fields=["read_through", "reads", "stored", "attempts", "last_error", "claim_token", "lease_until",
                          "cut", "cut_detail", "finished_at", "next_attempt_at"])
    if finished:
        entries.append(AuditEntry(actor=ACTOR, action="grant.evidence_finished", object_type="grant",
                                  object_id=str(g.pk), after="finished",
                                  data={"target": g.target.name, "events": p.stored, "reads": p.reads, "cut": p.cut}))
    audit_record_many(entries)
    signals_for_events(grant=g, events=new, stored=stored, now=now)
    if finished and not p.cut:  # with events missing, "never used" cannot be told
        signal_unused(grant=g, now=now)


def _event_entry(g: Grant, e: SessionEvent) -> AuditEntry:
    return AuditEntry(actor=ACTOR, action="grant.session_event", object_type="grant", object_id=str(g.pk),
                      after=str(e.event_id), reason=e.get_event_id_display(),
                      data={"user": g.user.get_username(), "target": g.target.name, "host": e.host, "record": e.record,
                            "event_id": e.event_id, "at": e.at.isoformat(), "sid": e.sid, "logon_type": e.logon_type,
                            "source": e.source, "logon_id": e.logon_id, "process": e.process, "member": e.member,
                            "target_sid": e.target_sid, "after_end": e.after_end})


def _failed(pulls: list[EvidencePull], token: uuid.UUID, error: Exception) -> None:
    """A server that did not answer: retried with the engine's backoff; given up (alerted once) on a permanent
    failure, or once the attempts ran out and the grant's evidence window is over."""
    message = f"{type(error).__name__}: {error}"
    gave_up: dict[int, bool] = {}

    def mark(p: EvidencePull, exhausted: bool, now) -> list[str]:
        transient = getattr(error, "transient", False)
        stop = gave_up[p.pk] = not transient or (exhausted and now >= collect_until(p.grant))
        if stop:
            p.gave_up, p.finished_at, p.next_attempt_at = True, now, None
            return ["gave_up", "finished_at"]
        return []

    def report(failures: list[claims.Failed]) -> None:
        audit_record_many([AuditEntry(actor=ACTOR, action="grant.evidence_gave_up" if gave_up[f.row.pk]
                                      else "grant.evidence_failed", object_type="grant", object_id=str(f.row.grant_id),
                                      reason=f.row.last_error, data={"target": f.row.grant.target.name,
                                                                     "attempts": f.row.attempts})
                           for f in failures])
        for p in (f.row for f in failures if gave_up[f.row.pk]):
            g = p.grant
            alert_raise(
                event="grant.evidence_gave_up", severity=Notification.Severity.WARNING,
                subject=f"Session evidence of grant #{g.pk} could not be read from {g.target.name}",
                body=(f"The Security log of {g.target.name} could not be read for grant #{g.pk} "
                      f"({g.user.get_username()}) after {p.attempts} attempt(s): {p.last_error}\nEvents not yet read "
                      f"(from {p.read_through:%Y-%m-%d %H:%M:%S} UTC) are not collected; read the server's log there."),
                link=_admin_link(g), object_type="grant", object_id=g.pk,
            )

    claims.attempt_failed(EvidencePull.objects.select_related("grant__user", "grant__target"), [p.pk for p in pulls],
                          token, error=message, transient=getattr(error, "transient", False), mark=mark, report=report,
                          state_field=None)
    log.warning("evidence read failed for %d grant(s): %s", len(pulls), message)
