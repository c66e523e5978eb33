"""Applying a grant: add the member in AD, verify (in AD, and on the server where checked), activate.

No network call inside a transaction: the apply holds a claim (renewed while it runs),
calls AD and the server with no transaction open, then commits the outcome conditional
on still holding the claim. After an extension, the member's PAM TTL is rewritten.
"""
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import directory, hosts
from jitad.audit.services import audit_record_many
from jitad.engine import claims
from jitad.engine.retry import backoff_seconds
from jitad.humantime import when
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise

from ..models import Grant
from . import host_checks
from .grant_ephemeral import ephemeral_account_ready
from .grant_failures import _attempt_failed
from .grant_work import _ad_account, _admin_link, _entry, _taken
from .notices import notice_grant_active, notice_grant_not_applied
from .unmanaged import group_not_managed_raise

log = logging.getLogger(__name__)
GrantState = Grant.State


def grant_apply_execute(*, grant_id: int, token) -> None:
    """Add the grant's user to its group in AD, verify (in AD, and on the server where checked), mark it active."""
    with _taken([grant_id], token) as (grants, mine):
        if grants:
            _apply(grants[0], mine)


def _apply(g: Grant, mine: uuid.UUID) -> None:
    if g.state not in (GrantState.GRANTING, GrantState.GRANT_FAILED, GrantState.UNVERIFIED):
        claims.release(Grant, [g.id], mine)
        return
    facts = None
    try:
        with directory.session() as d:
            if not g.user_dn:
                user = _ad_account(d, g.user)
                if user.disabled:
                    raise directory.DirectoryRejected(f"the AD account {user.sam_account_name} is disabled")
                # Commit who this grant backs before touching the group, so the
                # reconciler never mistakes our add for an out-of-band one.
                Grant.objects.filter(id=g.id, claim_token=mine).update(user_dn=user.dn, user_guid=user.guid, user_sid=user.sid)
                g.user_dn, g.user_sid = user.dn, user.sid
            ttl = int((g.expires_at - timezone.now()).total_seconds())
            if ttl <= 0:
                claims.release(Grant, [g.id], mine)
                return  # expired before it could be applied: the sweeper revokes it
            member = g.user_dn
            if g.ephemeral:  # an account of its own for this grant, created (once) before it joins the group
                member = ephemeral_account_ready(d, g, mine)
                if member is None:
                    return  # the claim lapsed meanwhile; the current holder decides
            d.add_member(g.group_dn, member, ttl_seconds=ttl, nested_into_protected=g.target.nested_into_protected)
            if g.target.host_checked:
                facts = {"group_sid": d.object_sid(g.group_dn), "user_in_group": d.is_member_nested(g.group_dn, member)}
    except directory.DirectoryError as e:
        _attempt_failed([g], mine, e, phase="grant")
        return
    except Exception as e:  # a bug must be loud and bounded too, not a silent crash loop
        log.exception("grant %s: unexpected error while applying", g.id)
        _attempt_failed([g], mine, directory.unexpected(e), phase="grant")
        return
    verdict = None
    if facts is not None:  # the directory connection is closed: the host may take its deadline
        # The AD part may have used much of the lease: renew it to cover the server's deadline.
        if not Grant.objects.filter(id=g.id, claim_token=mine).update(lease_until=claims.lease_until() + _host_budget()):
            return  # the claim lapsed meanwhile; the current holder decides
        try:
            verdict = host_checks.grant_right_verdict(target=g.target, group_dn=g.group_dn, **facts)
        except Exception as e:  # a bug must end in a recorded, alerted state, never a silent loop
            log.exception("grant %s: unexpected error while verifying on the server", g.id)
            verdict = host_checks.Verdict(False, f"unexpected {type(e).__name__}: {e}", hosts.HostError(str(e)))
        if not verdict.ok:
            _verification_failed(g, mine, verdict)
            return
    _activate(g, mine, verdict)


def _activate(g: Grant, token: uuid.UUID, verdict: "host_checks.Verdict | None") -> None:
    now = timezone.now()
    with transaction.atomic():
        done = Grant.objects.filter(id=g.id, claim_token=token, state=g.state).update(
            state=GrantState.ACTIVE, activated_at=now, claim_token=None, lease_until=None, attempts=0,
            next_attempt_at=None, last_error="", unverified_since=None,
            host_verified_at=now if verdict else None, host_detail=verdict.detail if verdict else "",
        )
        if done:
            extra = {"host_check": verdict.detail} if verdict else {}
            audit_record_many([_entry(g, actor="system:engine", action="grant.active", before=g.state, after=GrantState.ACTIVE,
                                      expires_at=g.expires_at.isoformat(), **extra)])
            notice_grant_active(grant=g)
            if g.state == GrantState.UNVERIFIED:
                alert_raise(
                    event="grant.verified", severity=Notification.Severity.INFO,
                    subject=f"Resolved: {g.user.get_username()} is admin on {g.target.name} (grant #{g.pk})",
                    body=f"Grant #{g.pk} is now active: "
                         + (verdict.detail if verdict else "the target is no longer checked on a server."),
                    link=_admin_link(g), object_type="grant", object_id=g.pk,
                )
    if not done:
        log.warning("grant %s: claim lapsed while applying; the current holder decides", g.id)


def _host_budget() -> timedelta:
    """The longest one server check may take: its deadline plus closing the shell."""
    return timedelta(seconds=settings.JITAD_WINRM_DEADLINE + 5)


def _verification_failed(g: Grant, token: uuid.UUID, verdict: "host_checks.Verdict") -> None:
    """The AD membership is there but the server does not show the right: unverified, retried within a window.

    The engine records the attempt (``jitad.engine.claims.attempt_failed``: the count, the
    error, the claim dropped); the verification window, not the engine's limit of attempts,
    says whether and when the server is asked again.
    """
    window: dict = {}

    def mark(row: Grant, exhausted: bool, now) -> list[str]:
        since = row.unverified_since or now
        window_end = since + timedelta(minutes=settings.JITAD_HOST_VERIFY_WINDOW_MINUTES)
        retry = verdict.worth_retrying and now < window_end
        row.state, row.unverified_since, row.retryable = GrantState.UNVERIFIED, since, retry
        row.host_detail = row.last_error
        row.next_attempt_at = min(now + timedelta(seconds=backoff_seconds(row.attempts)), window_end) if retry else None
        window.update(end=window_end, retry=retry)
        return ["state", "unverified_since", "retryable", "host_detail"]

    def report(failures: list[claims.Failed]) -> None:
        row, before = failures[0].row, failures[0].before
        retry, window_end = window["retry"], window["end"]
        entering = before != GrantState.UNVERIFIED
        action = "grant.unverified" if entering else ("grant.verify_failed" if retry else "grant.verify_gave_up")
        audit_record_many([_entry(row, actor="system:engine", action=action, before=before, after=GrantState.UNVERIFIED,
                                  reason=row.last_error, attempts=row.attempts, retrying=retry)])
        if entering or not retry:
            until = f"jitad re-checks until {when(window_end)}." if retry else (
                "jitad has stopped re-checking; fix the cause, then revoke and grant again.")
            alert_raise(
                event=action, severity=Notification.Severity.CRITICAL,
                subject=f"Not verified on {row.target.name}: {row.user.get_username()} (grant #{row.pk})",
                body=(f"Grant #{row.pk}: {row.user.get_username()} was added to {row.group_dn} in AD, but the server "
                      f"does not confirm the admin right. {row.last_error}\n{until}"),
                link=_admin_link(row), object_type="grant", object_id=row.pk,
            )
            if entering:
                notice_grant_not_applied(grant=row)

    recorded = claims.attempt_failed(Grant.objects.select_related("user", "target"), [g.id], token,
                                     error=verdict.detail, transient=verdict.worth_retrying, mark=mark, report=report)
    if recorded:
        log.warning("grant %s not verified on %s: %s", g.id, g.target.name, verdict.detail)


def grant_refresh_ttl_execute(*, grant_id: int) -> None:
    """After an extension, rewrite the member's PAM TTL (only where the forest has the feature)."""
    g = Grant.objects.filter(id=grant_id, state__in=[GrantState.ACTIVE, GrantState.UNVERIFIED]).first()
    member = g and (g.account_dn if g.ephemeral else g.user_dn)
    if g is None or not member:
        return
    ttl = int((g.expires_at - timezone.now()).total_seconds())
    try:
        with directory.session() as d:
            if ttl > 0 and d.pam_ttl_supported():
                d.add_member(g.group_dn, member, ttl_seconds=ttl, nested_into_protected=g.target.nested_into_protected)
    except directory.DirectoryNotManaged as e:  # never retried: the group is not jitad's to change
        with transaction.atomic():
            audit_record_many([_entry(g, actor="system:engine", action="grant.ttl_refresh_refused", before=g.state,
                                      after=g.state, reason=str(e)[:2000])])
            group_not_managed_raise(group_dn=e.dn, error=e, grant_ids=[g.id], by="engine")
