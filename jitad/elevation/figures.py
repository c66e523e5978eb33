"""Grant figures /metrics reads at scrape time (registered with ``jitad.metrics`` by this app's ``ready``).

Live grants only, counted by state through the (state, expires_at) index: the revoked ones
grow for ever, and what a dashboard wants of them is their rate and lateness, which the
engine counts as it revokes (``jitad_revocation_lateness_seconds``).
"""
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from .models import Grant

LIVE = [s for s in Grant.State.values if s != Grant.State.REVOKED]
UNREVOKED = [s for s in LIVE if s != Grant.State.SCHEDULED]


def grant_figures():
    counts = dict(Grant.objects.filter(state__in=LIVE).order_by().values_list("state").annotate(n=Count("id")))
    g = GaugeMetricFamily("jitad_grants", "Grants not yet revoked, by state", labels=["state"])
    for state in LIVE:
        g.add_metric([state], counts.get(state, 0))
    yield g
    cutoff = timezone.now() - timedelta(seconds=settings.JITAD_REVOCATION_SLA_SECONDS)
    late = Grant.objects.filter(Q(expires_at__lt=cutoff) | Q(revoke_requested_at__lt=cutoff), state__in=UNREVOKED)
    yield GaugeMetricFamily("jitad_grants_late", "Grants past their end (or an asked end) by more than "
                            "JITAD_REVOCATION_SLA_SECONDS and not yet revoked", value=late.count())
