"""Elevation business logic that changes state; views, admin, API, commands and tasks change state only through these.

Reads (eligibility, approver rights, what a person may see) are in ``jitad.elevation.selectors``.
"""
from .evidence import evidence_pulls_execute, evidence_sweep
from .grant_apply import grant_apply_execute, grant_refresh_ttl_execute
from .grant_ephemeral import ephemeral_accounts_delete_execute, ephemeral_orphans_reconcile, grant_account_reveal
from .grant_revoke import grants_revoke_execute
from .grant_sweep import revocations_claim_ahead, sweep, sweep_once
from .grants import grant_release, grant_revoke
from .group_watcher import group_watch, group_watch_once
from .held_removals import held_removals_confirm, held_removals_discard, held_removals_execute, held_removals_sweep
from .host_revocation import grants_check_revoked_execute
from .standing import host_scan
from .notices import grants_warn_expiring
from .reconciler import reconcile, reconcile_once
from .stages import stages_escalate
from .requests import (
    request_approve,
    request_cancel,
    request_create,
    request_deny,
    request_extend,
    requests_expire_pending,
)

__all__ = [
    "ephemeral_accounts_delete_execute",
    "ephemeral_orphans_reconcile",
    "grant_account_reveal",
    "evidence_pulls_execute",
    "evidence_sweep",
    "grant_apply_execute",
    "grants_check_revoked_execute",
    "host_scan",
    "grant_refresh_ttl_execute",
    "grant_release",
    "grant_revoke",
    "group_watch",
    "group_watch_once",
    "grants_warn_expiring",
    "held_removals_confirm",
    "held_removals_discard",
    "held_removals_execute",
    "held_removals_sweep",
    "grants_revoke_execute",
    "reconcile",
    "reconcile_once",
    "request_approve",
    "request_cancel",
    "request_create",
    "request_deny",
    "request_extend",
    "requests_expire_pending",
    "revocations_claim_ahead",
    "stages_escalate",
    "sweep",
    "sweep_once",
]
