"""Rows for the grant-timeline tests: a decided request with its grant, dated audit steps, Security log events."""
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jitad.audit.services import AuditEntry, audit_record_many
from jitad.elevation import services
from jitad.elevation.models import Grant, SessionEvent

Kind = SessionEvent.Kind


def decided_grant(requester, target, approver, *, justification="patching KB5031", ticket="CHG-1",
                  comment="ok, go") -> Grant:
    """``requester``'s request approved by ``approver``: the grant as the services leave it (nothing reaches AD)."""
    req = services.request_create(requester=requester, target=target, duration_minutes=60,
                                  justification=justification, ticket=ticket)
    services.request_approve(request=req, approver=approver, comment=comment)
    return Grant.objects.select_related("target", "request", "user").get(request=req)


def audit_step(grant: Grant, action: str, *, minutes: float, reason: str = "", actor="system:engine", **data):
    """An audit event of ``grant`` dated ``minutes`` after now (past dates are allowed outside production)."""
    with transaction.atomic():
        audit_record_many([AuditEntry(actor=actor, action=action, object_type="grant", object_id=str(grant.pk),
                                      reason=reason, data=data, at=timezone.now() + timedelta(minutes=minutes))])


def session_event(grant: Grant, event_id: int, *, minutes: float, record: int, **fields) -> SessionEvent:
    """A Security log event of ``grant`` dated ``minutes`` after now, as the collection stores it."""
    values = {"host": grant.target.name, "sid": grant.user_sid or "S-1-5-21-1-2-3-1104"}
    values.update(fields)
    return SessionEvent.objects.create(grant=grant, record=record, event_id=event_id,
                                       at=timezone.now() + timedelta(minutes=minutes),
                                       collected_at=timezone.now(), **values)
