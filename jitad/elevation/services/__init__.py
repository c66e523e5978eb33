"""Elevation business logic; views, admin, commands and tasks call only these."""
from .grant_apply import grant_apply_execute, grant_refresh_ttl_execute
from .grant_revoke import grants_revoke_execute
from .grant_sweep import sweep
from .grants import grant_release, grant_revoke
from .held_removals import held_removals_confirm, held_removals_discard, held_removals_execute, held_removals_sweep
from .host_revocation import grants_check_revoked_execute
from .standing import host_scan, scannable_targets
from .approvers import approval_progress, can_decide, is_approver_anywhere, requests_decidable_by
from .notices import grants_warn_expiring
from .policies import eligible_targets, policy_for
from .reconciler import reconcile, reconcile_once
from .requests import (
    request_approve,
    request_cancel,
    request_create,
    request_deny,
    request_extend,
    requests_expire_pending,
)

__all__ = [
    "approval_progress",
    "can_decide",
    "eligible_targets",
    "grant_apply_execute",
    "grants_check_revoked_execute",
    "host_scan",
    "scannable_targets",
    "grant_refresh_ttl_execute",
    "grant_release",
    "grant_revoke",
    "grants_warn_expiring",
    "held_removals_confirm",
    "held_removals_discard",
    "held_removals_execute",
    "held_removals_sweep",
    "grants_revoke_execute",
    "is_approver_anywhere",
    "policy_for",
    "reconcile",
    "reconcile_once",
    "requests_decidable_by",
    "request_approve",
    "request_cancel",
    "request_create",
    "request_deny",
    "request_extend",
    "requests_expire_pending",
    "sweep",
]
