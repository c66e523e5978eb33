"""Break-glass business logic that changes state; views, admin, commands and tasks change state only through these.

Reads (who may do what, what each person may see) are in ``jitad.breakglass.selectors``.
"""
from .accounts import (
    account_enrol,
    account_rotate,
    account_rotate_execute,
    account_rotate_here,
    account_update,
)
from .checkins import checkout_checkin
from .checkout_opening import checkout_open_execute
from .checkout_passwords import EnvelopeSheet, checkout_reveal, envelope_print
from .checkout_requests import checkout_approve, checkout_cancel, checkout_deny, checkout_request, envelope_request
from .envelopes import EnvelopeVerdict, envelope_verify
from .seals import seals_check
from .reviews import review_close, review_file, runbook_tick
from .sweep import breakglass_sweep

__all__ = [
    "EnvelopeSheet",
    "EnvelopeVerdict",
    "account_enrol",
    "account_rotate",
    "account_rotate_execute",
    "account_rotate_here",
    "account_update",
    "breakglass_sweep",
    "checkout_approve",
    "checkout_cancel",
    "checkout_checkin",
    "checkout_deny",
    "checkout_open_execute",
    "checkout_request",
    "checkout_reveal",
    "envelope_print",
    "envelope_request",
    "envelope_verify",
    "review_close",
    "review_file",
    "runbook_tick",
    "seals_check",
]
