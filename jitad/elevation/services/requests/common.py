"""What asking, deciding and closing share: the text limits, who acted, a request's audit entry, the
exclusive-target check, a pending request locked for a decision."""
from datetime import timedelta

from jitad.audit.services import audit_record
from jitad.humantime import when

from ...errors import RequestRefused
from ...models import AccessRequest, Target
from ...selectors.grants import exclusive_holder


TICKET_MAX = 64
JUSTIFICATION_MAX = 2000
START_SKEW = timedelta(minutes=1)  # a scheduled start this far in the past is "now" from a slow clock


def _actor(user) -> str:
    return user.get_username()


def _audit_request(req: AccessRequest, *, actor: str, action: str, before: str, reason: str = "", **data) -> None:
    audit_record(
        actor=actor,
        action=action,
        object_type="request",
        object_id=str(req.pk),
        before=before,
        after=req.state,
        reason=reason,
        data={"target": req.target.name, "requester": req.requester.get_username(), **data},
    )


def _check_exclusive(target: Target, requester) -> None:
    """A one-at-a-time target in refuse mode is refused while someone else holds it."""
    if target.exclusive != Target.Exclusive.REFUSE:
        return
    holder = exclusive_holder(target=target, user=requester)
    if holder is not None:
        raise RequestRefused(
            "target_held",
            f"{target.name} allows one admin at a time and is held by {holder.user.get_username()} "
            f"until {when(holder.expires_at)}.",
        )


def _locked_pending(request_id: int) -> AccessRequest:
    req = AccessRequest.objects.select_for_update(of=("self",)).select_related("policy", "target", "requester").get(pk=request_id)
    if req.state != AccessRequest.State.PENDING:
        raise RequestRefused("not_pending", f"Request #{req.pk} is {req.state}, not pending.")
    return req
