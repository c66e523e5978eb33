"""The KPIs of issue 15, computed from the records with a bounded number of queries (docs/reports.md).

``report_build`` is the one entry point: the Reports pages, the exports, ``manage.py
jitad_report`` and the JIT PAM document all render the :class:`~jitad.reports.figures.Report`
it returns. Each section is a module; every figure is None when nothing could compute it.
"""
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ...figures import Report
from . import approval, revocation, risk, standing, utilisation
from .common import scope_build

SECTIONS = (standing, utilisation, approval, revocation, risk)


def report_build(*, start: datetime, end: datetime, tier: int | None = None, target: str | None = None,
                 policy: str | None = None) -> Report:
    """The period [start, end)'s KPIs, narrowed to a tier, a target name or a policy name (unknown names: no rows)."""
    if start >= end:
        raise ValueError("the period must start before it ends")
    scope = scope_build(start=start, end=end, tier=tier, target=target, policy=policy)
    return Report(start=start, end=end, filters=scope.filters, sections=[s.section(scope) for s in SECTIONS],
                  generated_at=timezone.now())


def period_default(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The default period: the last JITAD_REPORT_PERIOD_DAYS days, ending now."""
    end = now or timezone.now()
    return end - timedelta(days=settings.JITAD_REPORT_PERIOD_DAYS), end
