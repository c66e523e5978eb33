"""The KPIs of issue 15, computed from the records with a bounded number of queries (docs/reports.md).

``report_build`` is the one entry point: the Reports pages, the exports, ``manage.py
jitad_report`` and the JIT PAM document all render the :class:`~jitad.reports.figures.Report`
it returns. Each section is a module; every figure is None when nothing could compute it.
"""
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.utils import timezone

from ...figures import Report
from . import approval, revocation, risk, standing, utilisation
from .common import gc_paused, scope_build

SECTIONS = {"standing": standing, "utilisation": utilisation, "approval": approval, "revocation": revocation,
            "risk": risk}


def report_build(*, start: datetime, end: datetime, tier: int | None = None, target: str | None = None,
                 policy: str | None = None, sections=None) -> Report:
    """The period [start, end)'s KPIs, narrowed to a tier, a target name or a policy name (unknown names: no rows).

    Naive times are read as UTC. ``sections`` (keys of SECTIONS) computes only those, in that order, for a page that shows one.
    """
    start, end = (t if timezone.is_aware(t) else timezone.make_aware(t, dt_timezone.utc) for t in (start, end))
    if start >= end:
        raise ValueError("the period must start before it ends")
    keys = list(SECTIONS) if sections is None else list(sections)
    unknown = [k for k in keys if k not in SECTIONS]
    if unknown:
        raise ValueError(f"no such report section: {', '.join(map(str, unknown))}")
    scope = scope_build(start=start, end=end, tier=tier, target=target, policy=policy)
    with gc_paused():  # rows by the hundred thousand, no cycles among them (common.gc_paused)
        sections_built = [SECTIONS[k].section(scope) for k in keys]
    return Report(start=start, end=end, filters=scope.filters, sections=sections_built, generated_at=timezone.now())


def period_default(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The default period: the last JITAD_REPORT_PERIOD_DAYS days, ending now."""
    end = now or timezone.now()
    return end - timedelta(days=settings.JITAD_REPORT_PERIOD_DAYS), end
