"""Celery tasks: thin, id-only, each calling one service.

Retries of directory work are scheduled in the database (``Grant.next_attempt_at``) and
driven by the sweeper, not by Celery countdowns: the attempt count survives a dead
worker, and a lost or duplicated message never changes the outcome.
"""
from celery import shared_task

from jitad.directory import DirectoryUnavailable
from jitad.engine import queue

from . import services
from .selectors.targets import scannable_targets

_SAFE = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="jitad.elevation.grant_apply", **_SAFE)
def grant_apply(grant_id: int, token: str) -> None:
    services.grant_apply_execute(grant_id=grant_id, token=token)


@shared_task(name="jitad.elevation.grants_revoke", **_SAFE)
def grants_revoke(grant_ids: list[int], token: str) -> None:
    services.grants_revoke_execute(grant_ids=grant_ids, token=token)


@shared_task(name="jitad.elevation.grants_check_revoked", **_SAFE)
def grants_check_revoked(grant_ids: list[int], token: str) -> None:
    services.grants_check_revoked_execute(grant_ids=grant_ids, token=token)


@shared_task(name="jitad.elevation.grants_account_delete", **_SAFE)
def grants_account_delete(grant_ids: list[int], token: str) -> None:
    services.ephemeral_accounts_delete_execute(grant_ids=grant_ids, token=token)


@shared_task(name="jitad.elevation.hosts_scan", expires=300)
def hosts_scan() -> int:
    """Fan out: one scan task per server, so one slow server never delays the others."""
    ids = list(scannable_targets().values_list("id", flat=True))
    for target_id in ids:
        queue.enqueue("jitad.elevation.host_scan", target_id)
    return len(ids)


@shared_task(name="jitad.elevation.host_scan", expires=3600, **_SAFE)
def host_scan(target_id: int) -> None:
    target = scannable_targets().filter(id=target_id).first()
    if target is not None:
        services.host_scan(target=target)


@shared_task(name="jitad.elevation.grant_refresh_ttl", autoretry_for=(DirectoryUnavailable,),
             retry_backoff=True, retry_jitter=True, max_retries=5, **_SAFE)
def grant_refresh_ttl(grant_id: int) -> None:
    services.grant_refresh_ttl_execute(grant_id=grant_id)


@shared_task(name="jitad.elevation.held_removals_execute", **_SAFE)
def held_removals_execute(held_ids: list[int], token: str) -> None:
    services.held_removals_execute(ids=held_ids, token=token)


@shared_task(name="jitad.elevation.sweep", expires=30)
def sweep(due: float | None = None) -> dict | None:
    # Confirmed held removals ride on the sweep: a lost message or a dead worker's claim is picked up by the next one.
    # One sweep at a time (services.sweep_once): another still running is not joined by this tick.
    # ``due``: the grant end the scheduler woke it for (engine.signals.next_due), None from the periodic tick.
    counts = services.sweep_once(due=due)
    return None if counts is None else {**counts, "held_removal": services.held_removals_sweep()}


@shared_task(name="jitad.elevation.revoke_ahead", expires=30)
def revoke_ahead(due: float | None = None) -> dict | None:
    # The scheduler's wake-up JITAD_REVOKE_LEAD_SECONDS before a grant end (engine.signals.next_due).
    return services.revocations_claim_ahead(due=due)


@shared_task(name="jitad.elevation.evidence_sweep", expires=300)
def evidence_sweep() -> dict | None:
    return services.evidence_sweep()


@shared_task(name="jitad.elevation.evidence_pull", **_SAFE)
def evidence_pull(pull_ids: list[int], token: str) -> None:
    services.evidence_pulls_execute(pull_ids=pull_ids, token=token)


@shared_task(name="jitad.elevation.reconcile", expires=300)
def reconcile() -> None:
    services.reconcile_once()


@shared_task(name="jitad.elevation.group_watch")
def group_watch() -> dict | None:
    # Every JITAD_GROUP_WATCH_INTERVAL; one at a time (services.group_watch_once), the beat sets a short expiry.
    return services.group_watch_once()


@shared_task(name="jitad.elevation.expire_pending", expires=300)
def expire_pending() -> int:
    return services.requests_expire_pending()


@shared_task(name="jitad.elevation.escalate", expires=300)
def escalate() -> dict:
    return services.stages_escalate()


@shared_task(name="jitad.elevation.warn_expiring", expires=300)
def warn_expiring() -> int:
    return services.grants_warn_expiring()
