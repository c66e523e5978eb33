"""Rows for access-history and retention tests: grants with their requests and approvals, scans, checkouts.

The history is a reading of records, so these tests build the records the services leave
behind (states and timestamps as the lifecycle writes them) on the real database.
"""
from datetime import datetime, timedelta, timezone as tz

from django.contrib.auth.models import Permission, User

from jitad.breakglass.models import Checkout, CheckoutApproval, SealedAccount
from jitad.elevation.models import AccessRequest, Approval, Grant, HostScan, StandingAdmin
from tests.elevation.builders import policy, target, user

__all__ = ["T0", "at", "checkout", "finding", "grant", "policy", "reporter", "scan", "sealed", "target", "user"]

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=tz.utc)


def at(hours: float = 0, days: float = 0) -> datetime:
    """A moment relative to T0 (2026-06-01 10:00 UTC)."""
    return T0 + timedelta(hours=hours, days=days)


def reporter(name: str = "auditor") -> User:
    """A user with reports.view_reports."""
    u = User.objects.create_user(username=name)
    u.user_permissions.add(Permission.objects.get(codename="view_reports", content_type__app_label="reports"))
    return User.objects.get(pk=u.pk)  # a fresh instance: the permission cache is empty


def grant(tgt, who, *, start, end=None, approvers=(), justification="patching", ticket="CHG-1", pol=None,
          state=None, reason=Grant.RevokeReason.EXPIRED, activated=True, extensions=()) -> Grant:
    """A grant held from ``start`` to ``end`` (None: still active), with its request and approvals."""
    pol = pol or tgt.policies.first()
    req = AccessRequest.objects.create(
        requester=who, target=tgt, policy=pol, duration_minutes=60, justification=justification, ticket=ticket,
        state=AccessRequest.State.APPROVED, approvals_required=len(approvers), created_at=start - timedelta(minutes=10),
        decided_at=start - timedelta(minutes=1),
    )
    for i, a in enumerate(approvers):
        Approval.objects.create(request=req, approver=a, decision=Approval.Decision.APPROVE, comment=f"ok {i}",
                                at=start - timedelta(minutes=5 - i))
    if state is None:
        state = Grant.State.REVOKED if end is not None else Grant.State.ACTIVE
    g = Grant.objects.create(
        request=req, user=who, target=tgt, group_dn=tgt.group_dn, user_dn=f"CN={who.username},OU=People,DC=jitad,DC=test",
        user_sid=f"S-1-5-21-1-2-3-{1000 + who.pk}", state=state, created_at=start - timedelta(seconds=30),
        activated_at=start if activated else None, expires_at=(end or start + timedelta(hours=1)),
        revoked_at=end if state == Grant.State.REVOKED else None,
        revoke_reason=reason if state == Grant.State.REVOKED else "",
    )
    for x in extensions:
        ext = AccessRequest.objects.create(
            kind=AccessRequest.Kind.EXTENSION, requester=who, target=tgt, policy=pol, extends=g, duration_minutes=30,
            justification=x, ticket="CHG-X", state=AccessRequest.State.APPROVED, created_at=start + timedelta(minutes=20),
        )
        for a in approvers:
            Approval.objects.create(request=ext, approver=a, decision=Approval.Decision.APPROVE, comment="more time")
    return g


def scan(tgt, when, *, ok=True) -> HostScan:
    return HostScan.objects.create(target=tgt, started_at=when - timedelta(seconds=5), finished_at=when, ok=ok)


def finding(tgt, sid, *, first, last, resolved=None, name="JITAD\\svc-backup") -> StandingAdmin:
    """A standing member first seen by the scan that finished at ``first``, last seen at ``last``."""
    return StandingAdmin.objects.create(target=tgt, sid=sid, name=name, first_seen_at=first, last_seen_at=last,
                                        resolved_at=resolved)


def sealed(name="bg-da1", **fields) -> SealedAccount:
    fields.setdefault("user_dn", f"CN={name},OU=BreakGlass,DC=jitad,DC=test")
    fields.setdefault("user_sid", "S-1-5-21-1-2-3-9001")
    return SealedAccount.objects.create(name=name, state=SealedAccount.State.SEALED, **fields)


def checkout(account, holder, *, opened, closed=None, approvers=(), purpose=Checkout.Purpose.USE) -> Checkout:
    """A checkout open from ``opened`` to ``closed`` (None: still open)."""
    c = Checkout.objects.create(
        account=account, holder=holder, purpose=purpose, incident_ref="INC-7", reason="DCs unreachable",
        duration_minutes=120, approvals_required=len(approvers), requested_at=opened - timedelta(minutes=5),
        decided_at=opened - timedelta(minutes=1), opened_at=opened, expires_at=opened + timedelta(hours=2),
        state=Checkout.State.CLOSED if closed else Checkout.State.OPEN,
        checkin_at=closed, closed_at=closed, checkin_kind=Checkout.CheckinKind.HOLDER if closed else "",
    )
    for a in approvers:
        CheckoutApproval.objects.create(checkout=c, approver=a, decision=CheckoutApproval.Decision.APPROVE,
                                        comment="go", at=opened - timedelta(minutes=2))
    return c
