"""Reads of the engine's rows: who leads, who is alive, when work last ran."""
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .models import Heartbeat, Lease, Pulse


@dataclass(frozen=True)
class LeaseState:
    holder: str
    expires_at: datetime | None

    @property
    def held(self) -> bool:
        return bool(self.holder) and self.expires_at is not None and self.expires_at >= timezone.now()


def lease_state(*, name: str) -> LeaseState:
    row = Lease.objects.filter(name=name).values("holder", "expires_at").first()
    return LeaseState(row["holder"], row["expires_at"]) if row else LeaseState("", None)


def heartbeats_dead(*, silent_for: timedelta) -> list[Heartbeat]:
    """Processes that stopped reporting without a clean shutdown, longest silent first."""
    cutoff = timezone.now() - silent_for
    return list(Heartbeat.objects.filter(stopped_at__isnull=True, seen_at__lt=cutoff).order_by("seen_at"))


def heartbeats_alive(*, within: timedelta, role: str | None = None) -> list[Heartbeat]:
    qs = Heartbeat.objects.filter(stopped_at__isnull=True, seen_at__gte=timezone.now() - within)
    if role:
        qs = qs.filter(role=role)
    return list(qs.order_by("node"))


def pulse_at(*, name: str) -> datetime | None:
    return Pulse.objects.filter(name=name).values_list("at", flat=True).first()
