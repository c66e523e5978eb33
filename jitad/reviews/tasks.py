"""Celery tasks of the reviews: thin, id-only, each calling one service."""
from celery import shared_task

from . import services
from .models import ReviewItem

_SAFE = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="jitad.reviews.sweep", expires=300)
def sweep() -> dict | None:
    return services.reviews_sweep()


@shared_task(name="jitad.reviews.item_apply", **_SAFE)
def item_apply(item_id: int) -> None:
    item = ReviewItem.objects.filter(pk=item_id).first()
    if item is not None:
        services.item_apply(item=item)
