"""Celery tasks for break-glass: thin, id-only; retries live in the database and the sweeper."""
from celery import shared_task

from . import services

_SAFE = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="jitad.breakglass.account_rotate", **_SAFE)
def account_rotate(account_id: int, token: str) -> None:
    services.account_rotate_execute(account_id=account_id, token=token)


@shared_task(name="jitad.breakglass.checkout_open", **_SAFE)
def checkout_open(checkout_id: int, token: str) -> None:
    services.checkout_open_execute(checkout_id=checkout_id, token=token)


@shared_task(name="jitad.breakglass.sweep", expires=30)
def sweep() -> dict:
    return services.breakglass_sweep()


@shared_task(name="jitad.breakglass.seals_check", expires=300)
def seals_check() -> dict:
    return services.seals_check()
