"""After a revocation: confirm on the server that the user's admin right is gone.

A revoked grant whose target is checked over WinRM carries ``host_revoke_check =
pending`` and a claim. This check reads the server's local Administrators, asks AD
whether the user is still in any domain group listed there (or listed directly), and
ends logon sessions on the server (post-session hygiene: logoff, processes stopped,
Kerberos tickets purged, no logon session left): the user's where the request's policy
says so, and a grant's ephemeral account's always (it is deleted afterwards). The outcome
is recorded on the grant and audited; a user still admin by another path, a logon session
that remains, or a check that keeps failing, is alerted. The AD removal itself is already
done and verified: this never re-opens it.
"""
import logging
import sys
import uuid
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import directory, hosts
from jitad.audit.services import audit_record_many
from jitad.engine import claims
from jitad.engine.retry import backoff_seconds
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import Grant
from . import host_checks
from .grant_work import _admin_link, _entry, _taken

log = logging.getLogger(__name__)
HostCheck = Grant.HostCheck


def grants_check_revoked_execute(*, grant_ids: list[int], token) -> None:
    """Check the claimed revoked grants on their servers, one WinRM connection per server."""
    with _taken(grant_ids, token) as (grants, mine):
        _check_taken(grants, mine)


def _check_taken(grants: list[Grant], mine: uuid.UUID) -> None:
    mine_pending = [g for g in grants if g.state == Grant.State.REVOKED and g.host_revoke_check == HostCheck.PENDING]
    claims.release(Grant, [g.id for g in grants if g not in mine_pending], mine)
    by_target: dict[int, list[Grant]] = defaultdict(list)
    for g in mine_pending:
        by_target[g.target_id].append(g)
    for target_grants in by_target.values():
        _check_target(target_grants, mine)


def _check_target(grants: list[Grant], token: uuid.UUID) -> None:
    target = grants[0].target
    # Someone granted this target again meanwhile is admin by right: neither checked nor logged off.
    again = set(
        Grant.objects.filter(target=target, user_id__in=[g.user_id for g in grants], state__in=Grant.LIVE_STATES)
        .values_list("user_id", flat=True)
    )
    checked = [g for g in grants if g.user_id not in again]
    by_policy = set(
        Grant.objects.filter(id__in=[g.id for g in checked], request__policy__end_sessions_on_revoke=True)
        .values_list("id", flat=True)
    )
    end_for = {g.user_sid for g in checked if g.id in by_policy and g.user_sid}
    # An ephemeral account exists for its grant alone and is deleted next: always logged off.
    end_for |= {g.account_sid for g in grants if g.ephemeral and g.account_sid}
    users = {g.user_sid: g.user_dn for g in checked if g.user_sid}
    # Each end_sessions call has a deadline of its own: the claim must outlast them all.
    budget = timedelta(seconds=(settings.JITAD_WINRM_DEADLINE + 5) * (1 + len(end_for)) + settings.JITAD_LEASE_SECONDS)
    if not Grant.objects.filter(id__in=[g.id for g in grants], claim_token=token).update(
            lease_until=timezone.now() + budget):
        return
    try:
        if users or end_for:
            with directory.session() as d:
                result = host_checks.revocation_check(target=target, d=d, users=users, end_sessions_for=end_for)
        else:  # never applied, or granted again: nothing to ask the server
            result = host_checks.RevocationCheck(still_admin_through={}, sessions_ended={})
    except (hosts.HostError, directory.DirectoryError) as e:
        _check_failed(grants, token, e)
        return
    except Exception as e:  # a bug: recorded and alerted as a permanent failure, never a silent loop
        log.exception("revocation check on %s failed unexpectedly", target.name)
        _check_failed(grants, token, hosts.HostError(f"unexpected {type(e).__name__}: {e}"))
        return
    remain = {g.id: _remaining(g, result) for g in grants}
    if done := [g for g in grants if not remain[g.id]]:
        _record(done, token, result, again=again)
    for g in (g for g in grants if remain[g.id]):  # a logon session left: retried, then alerted
        _check_failed([g], token, remain[g.id], extra=_sessions_data(g, result))


def _ended_sids(g: Grant) -> list[tuple[str, str]]:
    """(SID, how the detail names it) of the accounts whose sessions a grant's check may end."""
    out = [(g.user_sid, "")] if g.user_sid else []
    if g.ephemeral and g.account_sid:
        out.append((g.account_sid, f"ephemeral account {g.account_sam or g.account_sid}: "))
    return out


def _holder(g: Grant, sid: str) -> str:
    name = g.user.get_username()
    return f"{name}'s ephemeral account {g.account_sam or sid}" if sid == g.account_sid and g.ephemeral else name


def _remaining(g: Grant, result: "host_checks.RevocationCheck") -> hosts.HostSessionsRemain | None:
    """The failure for a grant one of whose accounts still has a logon session on the server, if any."""
    left = [(sid, result.sessions_remain[sid]) for sid, _ in _ended_sids(g) if sid in result.sessions_remain]
    if not left:
        return None
    text = "; ".join(f"{_holder(g, sid)} still has a logon session on {g.target.name}: "
                     + ", ".join(str(r) for r in e.ended.remaining) for sid, e in left)
    return hosts.HostSessionsRemain(text + _sessions_text(g, result), ended=left[0][1].ended)


def _sessions_text(g: Grant, result: "host_checks.RevocationCheck") -> str:
    parts = []
    for sid, label in _ended_sids(g):
        ended = result.sessions_ended.get(sid)
        if ended is not None:
            parts.append(f"{label}{len(ended.sessions)} session(s) logged off, {ended.processes} process(es) stopped, "
                         f"Kerberos tickets purged in {ended.tickets_purged} logon session(s)")
    return "".join(f"; {p}" for p in parts)


def _sessions_data(g: Grant, result: "host_checks.RevocationCheck") -> dict:
    """What ending sessions did, for the audit entry (totals, and per account)."""
    ended = [(sid, result.sessions_ended[sid]) for sid, _ in _ended_sids(g) if sid in result.sessions_ended]
    if not ended:
        return {"sessions": None, "processes": None, "tickets_purged": None}
    return {
        "sessions": [s for _, e in ended for s in e.sessions],
        "processes": sum(e.processes for _, e in ended),
        "tickets_purged": sum(e.tickets_purged for _, e in ended),
        "sessions_ended": [{"sid": sid, "ephemeral": sid == g.account_sid and g.ephemeral, "sessions": list(e.sessions),
                            "processes": e.processes, "tickets_purged": e.tickets_purged,
                            "remaining": [str(r) for r in e.remaining]} for sid, e in ended],
    }


def _record(grants: list[Grant], token: uuid.UUID, result: "host_checks.RevocationCheck", *, again: set[int]) -> None:
    entries = []
    with transaction.atomic():
        held = {g.id for g in Grant.objects.select_for_update().filter(id__in=[g.id for g in grants], claim_token=token)}
        for g in grants:
            if g.id not in held:
                continue
            through = result.still_admin_through.get(g.user_sid)
            if g.user_id in again:
                outcome, detail = HostCheck.VERIFIED, f"{g.target.name}: not checked; the user holds a newer grant of it"
            elif through:
                outcome, detail = HostCheck.STILL_ADMIN, f"{g.target.name}: still a local admin through {', '.join(through)}"
            elif g.user_sid:
                outcome, detail = HostCheck.VERIFIED, f"{g.target.name}: no longer a local admin"
            else:
                outcome, detail = HostCheck.VERIFIED, "never applied"
            detail += _sessions_text(g, result)
            Grant.objects.filter(id=g.id).update(host_revoke_check=outcome, host_detail=detail, claim_token=None,
                                                 lease_until=None, next_attempt_at=None, last_error="")
            entries.append(_entry(g, actor="system:engine", action=f"grant.host_{outcome}", before=Grant.State.REVOKED,
                                  after=Grant.State.REVOKED, reason=detail, **_sessions_data(g, result)))
            if through:
                alert_raise(
                    event="grant.still_admin", severity=Notification.Severity.CRITICAL,
                    subject=f"{g.user.get_username()} is still admin on {g.target.name} after grant #{g.pk} ended",
                    body=(f"Grant #{g.pk} was removed from {g.group_dn}, but {g.target.name}'s local Administrators still "
                          f"gives {g.user.get_username()} the right through: {', '.join(through)}. That is standing "
                          "access outside jitad: remove it, or allow-list it on the target."),
                    link=_admin_link(g), object_type="grant", object_id=g.pk,
                )
        audit_record_many(entries)
    log.info("revocation checked on %s for %d grant(s)", grants[0].target.name, len(entries))


def _check_failed(grants: list[Grant], token: uuid.UUID, error: Exception, *, extra: dict | None = None) -> None:
    """Retry a transient failure with backoff for JITAD_HOST_VERIFY_WINDOW_MINUTES after the revocation
    (a server may be rebooting); give up, alerted, after that or on a permanent failure.

    The engine records the attempt (``claims.attempt_failed``: the count, the error, the claim
    dropped); the window, not the engine's limit of attempts, says whether the server is asked again.
    A logon session left on the server (HostSessionsRemain) is such a transient failure; ``extra``
    (what ending sessions did) goes into the audit entries.
    """
    message = f"{type(error).__name__}: {error}"
    retrying: dict[int, bool] = {}

    def mark(g: Grant, exhausted: bool, now) -> list[str]:
        window_end = (g.revoked_at or now) + timedelta(minutes=settings.JITAD_HOST_VERIFY_WINDOW_MINUTES)
        retry = retrying[g.pk] = not exhausted and now < window_end
        g.host_revoke_check = HostCheck.PENDING if retry else HostCheck.FAILED
        g.host_detail = g.last_error
        g.next_attempt_at = min(now + timedelta(seconds=backoff_seconds(g.attempts)), window_end) if retry else None
        return ["host_revoke_check", "host_detail"]

    def report(failures: list[claims.Failed]) -> None:
        audit_record_many([_entry(f.row, actor="system:engine",
                                  action="grant.host_check_failed" if retrying[f.row.pk] else "grant.host_check_gave_up",
                                  before=f.before, after=f.row.state, reason=f.row.last_error, attempts=f.row.attempts,
                                  **(extra or {}))
                           for f in failures])
        for g in (f.row for f in failures if not retrying[f.row.pk]):
            if isinstance(error, hosts.HostSessionsRemain):
                _alert_sessions_remain(g)
                continue
            alert_raise(
                event="grant.host_check_failed", severity=Notification.Severity.CRITICAL,
                subject=f"Could not confirm on {g.target.name} that {g.user.get_username()} lost admin (grant #{g.pk})",
                body=(f"Grant #{g.pk}: the membership was removed from {g.group_dn} in AD, but {g.target.name} could "
                      f"not be checked after {g.attempts} attempt(s): {g.last_error}\nLogon sessions on the server may "
                      "still hold the right until they end; check the server."),
                link=_admin_link(g), object_type="grant", object_id=g.pk,
            )

    claims.attempt_failed(Grant.objects.select_related("user", "target"), [g.id for g in grants], token,
                          error=message, transient=getattr(error, "transient", False), max_attempts=sys.maxsize,
                          mark=mark, report=report)
    log.warning("revocation check failed for %d grant(s): %s", len(grants), message)


def _alert_sessions_remain(g: Grant) -> None:
    holder = g.user.get_username()
    alert_raise(
        event="grant.session_remains", severity=Notification.Severity.CRITICAL,
        subject=f"{holder} still has a logon session on {g.target.name} after grant #{g.pk} ended",
        body=(f"Grant #{g.pk} was removed from {g.group_dn} in AD, but after {g.attempts} attempt(s) to end them, "
              f"logon sessions on {g.target.name} still run processes: {g.last_error}\nA logon token keeps the "
              "group it was issued with: log the session off on the server (or restart it)."),
        link=_admin_link(g), object_type="grant", object_id=g.pk,
    )
