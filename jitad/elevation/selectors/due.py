"""When the grants' sweep next has timed work: the instant the elected scheduler wakes it for.

Three kinds of work fall due at an instant the rows announce: a live grant's end
(``expires_at``), a retry (``next_attempt_at`` of a grant whose apply, removal or server
check failed), and a scheduled grant's start (``starts_at``). Each is one indexed read
(``state, expires_at``, ``state, next_attempt_at``). Work no instant announces (a dead
worker's claim lapsing, a lost message) is left to the periodic sweep.
"""
from datetime import datetime

from ..models import Grant

GrantState = Grant.State
_ENDING = (GrantState.APPROVED, GrantState.GRANTING, GrantState.ACTIVE, GrantState.UNVERIFIED, GrantState.GRANT_FAILED)
_RETRYING = (GrantState.GRANTING, GrantState.GRANT_FAILED, GrantState.UNVERIFIED, GrantState.REVOKING,
             GrantState.REVOKE_FAILED)


def _first(qs, field: str) -> datetime | None:
    return qs.order_by(field).values_list(field, flat=True).first()


def sweep_next_due(*, after: datetime) -> datetime | None:
    """The earliest instant strictly after ``after`` at which a grant needs the sweep, or None."""
    instants = [
        _first(Grant.objects.filter(state__in=_ENDING, revoke_requested_at__isnull=True, expires_at__gt=after),
               "expires_at"),
        _first(Grant.objects.filter(state__in=_RETRYING, next_attempt_at__gt=after), "next_attempt_at"),
        _first(Grant.objects.filter(state=GrantState.REVOKED, host_revoke_check=Grant.HostCheck.PENDING,
                                    next_attempt_at__gt=after), "next_attempt_at"),
        _first(Grant.objects.filter(state=GrantState.SCHEDULED, revoke_requested_at__isnull=True, starts_at__gt=after),
               "starts_at"),
    ]
    instants = [t for t in instants if t is not None]
    return min(instants) if instants else None
