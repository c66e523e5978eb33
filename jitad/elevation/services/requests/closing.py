"""Closing: a request withdrawn, the requests of a blocked person, requests expired without a decision."""
from django.db import transaction
from django.utils import timezone

from ...errors import RequestRefused
from ...models import AccessRequest
from ..grants import grants_revoke_for_user
from ..notices import notice_request_decided
from .common import _actor, _audit_request, _locked_pending


def request_cancel(*, request: AccessRequest, actor) -> AccessRequest:
    """The requester withdraws a pending request."""
    with transaction.atomic():
        req = _locked_pending(request.pk)
        if actor.pk != req.requester_id:
            raise RequestRefused("not_requester", "Only the requester may cancel a request.")
        req.state = AccessRequest.State.CANCELLED
        req.decided_at = timezone.now()
        req.save(update_fields=["state", "decided_at"])
        _audit_request(req, actor=_actor(actor), action="request.cancelled", before=AccessRequest.State.PENDING)
    return req


def _close_each(ids, *, state: str, actor: str, action: str, reason: str, now, tell_requester: bool) -> int:
    """Move each still-pending request of ``ids`` to ``state``, one locked row at a time."""
    count = 0
    for request_id in ids:
        with transaction.atomic():
            req = (AccessRequest.objects.select_for_update(of=("self",)).select_related("target", "requester", "policy")
                   .get(pk=request_id))
            if req.state != AccessRequest.State.PENDING:
                continue
            req.state = state
            req.decided_at = now
            req.save(update_fields=["state", "decided_at"])
            _audit_request(req, actor=actor, action=action, before=AccessRequest.State.PENDING, reason=reason)
            if tell_requester:
                notice_request_decided(request=req)
            count += 1
    return count


def requests_cancel_for_user(*, user, actor: str, reason: str) -> int:
    """Close every pending request of ``user`` (blocked or gone); returns how many."""
    ids = list(AccessRequest.objects.filter(requester=user, state=AccessRequest.State.PENDING).values_list("id", flat=True))
    return _close_each(ids, state=AccessRequest.State.CANCELLED, actor=actor, action="request.cancelled", reason=reason,
                       now=timezone.now(), tell_requester=False)


def holdings_end_for_blocked(sender, *, user, actor: str, reason: str, **kwargs) -> dict[str, int]:
    """Receiver of accounts' ``account_blocked``: the person's pending requests are cancelled,
    then their live grants revoked; returns how many of each."""
    cancelled = requests_cancel_for_user(user=user, actor=actor, reason=reason)
    return {"requests_cancelled": cancelled,
            "grants_revoked": grants_revoke_for_user(user=user, actor=actor, comment=reason)}


def requests_expire_pending(*, now=None) -> int:
    """Close requests nobody decided in time, and tell their requesters; returns how many."""
    now = now or timezone.now()
    ids = list(
        AccessRequest.objects.filter(state=AccessRequest.State.PENDING, pending_until__lte=now).values_list("id", flat=True)[:1000]
    )
    return _close_each(ids, state=AccessRequest.State.EXPIRED_UNAPPROVED, actor="system:timeout",
                       action="request.expired_unapproved", reason="no decision within the policy's timeout", now=now,
                       tell_requester=True)
