"""Moved to ``jitad.breakglass.selectors``; these names stay for ``checkouts`` until its import moves."""
from ..selectors import (  # noqa: F401  re-exported for checkouts.py until its imports move
    account_approvers,
    can_decide_checkout,
    can_force_checkin,
    is_responder,
)

__all__ = ["account_approvers", "can_decide_checkout", "can_force_checkin", "is_responder"]
