"""Requests and decisions, one module per phase: asking (create, extend), deciding (approve, deny, stages),
closing (cancel, blocked, expire). ``common`` holds what they share; every public name is importable from here."""
from .asking import request_create, request_extend
from .closing import holdings_end_for_blocked, request_cancel, requests_cancel_for_user, requests_expire_pending
from .common import JUSTIFICATION_MAX, TICKET_MAX
from .deciding import request_approve, request_deny

__all__ = [
    "JUSTIFICATION_MAX",
    "TICKET_MAX",
    "holdings_end_for_blocked",
    "request_approve",
    "request_cancel",
    "request_create",
    "request_deny",
    "request_extend",
    "requests_cancel_for_user",
    "requests_expire_pending",
]
