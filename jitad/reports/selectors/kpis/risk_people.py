"""Risk signals about people: always on (elevated most of the working time, or day after day), and eligible but unused."""
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower

from jitad.elevation.models import AccessRequest, Policy

from .common import Scope, WorkingHours, merge, pct


def _longest_run(days: set) -> int:
    best = 0
    for d in days:
        if d - timedelta(days=1) in days:
            continue
        n = 1
        while d + timedelta(days=n) in days:
            n += 1
        best = max(best, n)
    return best


def always_on(scope: Scope, grants: list[tuple], wh: WorkingHours) -> list[dict]:
    """People elevated for JITAD_REPORT_ALWAYS_ON_SHARE_PCT of the period's working hours, or on
    JITAD_REPORT_ALWAYS_ON_DAYS consecutive (local) days; rows sorted by share, then run."""
    lo, hi = scope.start.timestamp(), min(scope.end, scope.now).timestamp()
    working = wh.seconds_within(lo, hi)
    by_user: dict[int, list] = defaultdict(list)
    ids: dict[int, list] = defaultdict(list)
    for gid, user, _target, start, end in grants:
        by_user[user].append((max(start, lo), min(end, hi)))
        ids[user].append(gid)
    share_min, days_min = settings.JITAD_REPORT_ALWAYS_ON_SHARE_PCT, settings.JITAD_REPORT_ALWAYS_ON_DAYS
    rows = []
    for user, ivs in by_user.items():
        merged = merge(ivs)
        inside = sum(wh.seconds_within(s, e) for s, e in merged)
        days = {d for s, e in merged for d in wh.days_spanned(s, e)}
        share, run = pct(inside, working), _longest_run(days)
        if (share is not None and share >= share_min) or run >= days_min:
            rows.append({"user_id": user, "working_share_pct": share, "longest_run_days": run,
                         "days_elevated": len(days), "grants": len(ids[user]), "grant_ids": ids[user]})
    names = dict(get_user_model().objects.filter(id__in=[r["user_id"] for r in rows]).values_list("id", "username"))
    for r in rows:
        r["user"] = names.get(r["user_id"], str(r["user_id"]))
    rows.sort(key=lambda r: (-(r["working_share_pct"] or 0), -r["longest_run_days"], r["user"]))
    return rows


def _policies(scope: Scope):
    qs = Policy.objects.filter(enabled=True)
    if scope.policy is not None:
        qs = qs.filter(name=scope.policy)
    if scope.target_ids is not None:
        qs = qs.filter(targets__id__in=scope.target_ids)
    return list(qs.distinct().values_list("eligible_users", "eligible_groups"))


def unused_eligible(scope: Scope) -> tuple[int | None, list[dict]]:
    """People an enabled policy in scope makes eligible (by name or mirrored AD group) who made no
    request in scope during the JITAD_REPORT_UNUSED_DAYS before the period's end: candidates to remove."""
    policies = _policies(scope)
    if not policies:
        return None, []
    users = {u.lower() for names, _g in policies for u in (names or [])}
    groups = {g.lower() for _u, names in policies for g in (names or [])}
    User = get_user_model()
    eligible = (User.objects.filter(is_active=True)
                .annotate(lname=Lower("username"))
                .filter(Q(lname__in=users) | Q(id__in=User.objects.annotate(gname=Lower("groups__name"))
                                                .filter(gname__in=groups).values("id"))))
    cutoff = scope.end - timedelta(days=settings.JITAD_REPORT_UNUSED_DAYS)
    # NOT EXISTS per person (the requester index), not NOT IN over every request of the window.
    used = AccessRequest.objects.filter(scope.requests_q(), requester_id=OuterRef("pk"), created_at__gte=cutoff,
                                        created_at__lt=scope.end)
    unused = list(eligible.filter(~Exists(used)).order_by("username")
                  .values_list("id", "username", "last_login"))
    return len(unused), [{"user_id": i, "user": n, "last_login": ll.isoformat() if ll else None} for i, n, ll in unused]
