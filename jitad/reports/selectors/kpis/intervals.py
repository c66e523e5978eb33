"""Who held a right when: JIT grants and standing admins as intervals, fetched in one query each."""
from django.db.models import Min, Q

from jitad.elevation.models import Grant, HostScan, StandingAdmin

from .common import Scope


def grant_intervals(lo, hi, now, *, q: Q = Q()) -> list[tuple]:
    """(grant id, user id, target id, start, end) of grants in effect during [lo, hi).

    A grant is in effect from ``activated_at`` (the right was shown to exist) until
    ``revoked_at`` (the membership verified gone); one not yet removed lasts until ``now``.
    Grants that never became active (failed, approved but not yet applied) hold nothing.
    """
    rows = (
        Grant.objects.filter(q, activated_at__isnull=False, activated_at__lt=hi)
        .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=lo))
        .values_list("id", "user_id", "target_id", "activated_at", "revoked_at")
    )
    return [(i, u, t, a, r or max(a, now)) for i, u, t, a, r in rows]


def standing_intervals(lo, hi, now, *, q: Q = Q()) -> list[tuple]:
    """(finding id, target id, sid, start, end) of standing admins present during [lo, hi)."""
    rows = (
        StandingAdmin.objects.filter(q, first_seen_at__lt=hi)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gt=lo))
        .values_list("id", "target_id", "sid", "first_seen_at", "resolved_at")
    )
    return [(i, t, s, f, r or max(f, now)) for i, t, s, f, r in rows]


def first_scans(before, *, q: Q = Q()) -> dict[int, object]:
    """Target id → the start of its first successful standing-admin scan before ``before``."""
    rows = HostScan.objects.filter(q, ok=True, started_at__lt=before).values("target_id").annotate(first=Min("started_at"))
    return {r["target_id"]: r["first"] for r in rows}


def scope_grants(scope: Scope, lo=None, hi=None) -> list[tuple]:
    """``grant_intervals`` for the scope (its period unless ``lo``/``hi`` are given)."""
    return grant_intervals(lo or scope.start, hi or scope.end, scope.now, q=scope.requests_q("request__"))


def scope_standing(scope: Scope, lo=None, hi=None) -> list[tuple]:
    """``standing_intervals`` for the scope's targets."""
    return standing_intervals(lo or scope.start, hi or scope.end, scope.now, q=scope.targets_q("target__"))
