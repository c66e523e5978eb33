"""Who held a right when: JIT grants and standing admins as intervals of epoch seconds, one query each."""
from django.db.models import Exists, Min, OuterRef, Q

from jitad.elevation.models import Grant, HostScan, StandingAdmin, Target

from .common import Epoch, Scope


def grant_intervals(lo, hi, now, *, q: Q = Q()) -> list[tuple]:
    """(grant id, user id, target id, start, end) of grants in effect during [lo, hi); start/end in epoch seconds.

    A grant is in effect from ``activated_at`` (the right was shown to exist) until
    ``revoked_at`` (the membership verified gone); one not yet removed lasts until ``now``.
    Grants that never became active (failed, approved but not yet applied) hold nothing.
    """
    rows = (
        Grant.objects.filter(q, activated_at__isnull=False, activated_at__lt=hi)
        .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=lo))
        .order_by().values_list("id", "user_id", "target_id", Epoch("activated_at"), Epoch("revoked_at"))
    )
    now_s = now.timestamp()
    return [(i, u, t, a, r if r is not None else max(a, now_s)) for i, u, t, a, r in rows]


def standing_intervals(lo, hi, now, *, q: Q = Q()) -> list[tuple]:
    """(finding id, target id, sid, start, end) of standing admins present during [lo, hi); epoch seconds."""
    rows = (
        StandingAdmin.objects.filter(q, first_seen_at__lt=hi)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gt=lo))
        .order_by().values_list("id", "target_id", "sid", Epoch("first_seen_at"), Epoch("resolved_at"))
    )
    now_s = now.timestamp()
    return [(i, t, s, f, r if r is not None else max(f, now_s)) for i, t, s, f, r in rows]


def first_scans(before, *, q: Q = Q()) -> dict[int, float]:
    """Target id → the start (epoch seconds) of its first successful standing-admin scan before ``before``."""
    rows = (HostScan.objects.filter(q, ok=True, started_at__lt=before).order_by().values("target_id")
            .annotate(first=Min("started_at")))
    return {r["target_id"]: r["first"].timestamp() for r in rows}


def scanned_targets(before, *, q: Q = Q()) -> set[int]:
    """Ids of the targets (``q`` narrows Target) with a successful standing-admin scan before ``before``.

    The keys of ``first_scans`` without the dates: one probe of the (target, started_at) index per
    target instead of a pass over every scan ever made.
    """
    ok_scan = HostScan.objects.filter(target_id=OuterRef("pk"), ok=True, started_at__lt=before)
    return set(Target.objects.filter(q, Exists(ok_scan)).order_by().values_list("id", flat=True))


def scope_grants(scope: Scope) -> list[tuple]:
    """``grant_intervals`` for the scope's period (fetched once per report)."""
    if "grants" not in scope.cache:
        scope.cache["grants"] = grant_intervals(scope.start, scope.end, scope.now, q=scope.grants_q())
    return scope.cache["grants"]


def scope_standing(scope: Scope) -> list[tuple]:
    """``standing_intervals`` for the scope's targets and period."""
    return standing_intervals(scope.start, scope.end, scope.now, q=scope.targets_q("target__"))
