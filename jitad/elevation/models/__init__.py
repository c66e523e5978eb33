"""Targets, eligibility policies, access requests, approvals, grants, and reconciler removals held for an operator.

One module per subject; every model is importable from here, as before.
"""
from .catalog import Target, Policy, ALLOWED_ADMIN_PATTERN, WINRM_URL_PATTERN
from .requests import AccessRequest, Approval
from .grants import Grant
from .evidence import EvidencePull, SessionEvent, SessionSignal
from .hosts import HostScan, StandingAdmin
from .reconcile import DirectoryCookie, HeldRemoval, GroupReading
from .delegations import Delegation
from .exclusions import EligibilityExclusion

__all__ = [
    "Target",
    "Policy",
    "ALLOWED_ADMIN_PATTERN",
    "WINRM_URL_PATTERN",
    "AccessRequest",
    "Approval",
    "Grant",
    "SessionEvent",
    "EvidencePull",
    "SessionSignal",
    "HostScan",
    "StandingAdmin",
    "HeldRemoval",
    "GroupReading",
    "DirectoryCookie",
    "Delegation",
    "EligibilityExclusion",
]
