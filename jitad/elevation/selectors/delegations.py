"""Deputies: which delegations let a person decide in another approver's place, now."""
from django.db.models import QuerySet
from django.utils import timezone

from ..models import Delegation


def delegations_running(*, deputy, at=None) -> QuerySet:
    """The delegations ``deputy`` may act on at ``at`` (now): started, not ended, not revoked, from an active delegator."""
    at = at or timezone.now()
    return (Delegation.objects.filter(deputy=deputy, starts_at__lte=at, ends_at__gt=at, revoked_at__isnull=True,
                                      delegator__is_active=True)
            .select_related("delegator").order_by("starts_at", "pk"))
