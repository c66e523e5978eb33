"""Who may decide a request, and when enough of them have agreed.

Approvers are defined by policy, never by Django permissions: a request for ``target``
under ``policy`` may be decided by members of the policy's approver groups and of the
target's own approver groups (AD group names, mirrored into Django groups at login),
except the requester. N-of-M means N distinct people; with
``Policy.distinct_approver_groups`` each approval must also stand for a different group
(a peer and a manager), which is a matching problem: a person in both groups counts for
whichever group the others leave open.
"""
from functools import reduce
from operator import or_

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q, QuerySet

from jitad.accounts.groups import JSONListMatches, group_names, group_names_query

from ..models import AccessRequest, Approval, Policy, Target


def approver_groups_for(*, policy: Policy, target: Target) -> list[str]:
    """The AD groups whose members may decide requests for ``target`` under ``policy``."""
    seen, names = set(), []
    for name in [*(policy.approver_groups or []), *(target.approver_groups or [])]:
        if isinstance(name, str) and name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return names


def approver_groups_of(*, user, request: AccessRequest, groups: set[str] | None = None) -> list[str]:
    """The request's approver groups ``user`` is in, spelt as the policy or target spells them."""
    mine = group_names(user) if groups is None else groups
    return [g for g in approver_groups_for(policy=request.policy, target=request.target) if g.lower() in mine]


def approvers_to_notify(*, request: AccessRequest) -> list:
    """Active users who may decide ``request`` and have an e-mail address; never the requester.

    Django groups mirror the AD groups at login; names compare case-insensitively.
    """
    names = approver_groups_for(policy=request.policy, target=request.target)
    if not names:
        return []
    groups = Group.objects.filter(reduce(or_, (Q(name__iexact=n) for n in names)))
    return list(
        get_user_model().objects.filter(is_active=True, groups__in=groups)
        .exclude(pk=request.requester_id).exclude(email="").distinct().order_by("pk")
    )


def can_decide(*, user, request: AccessRequest, groups: set[str] | None = None) -> bool:
    """True if ``user`` may approve or deny ``request``: an approver for it, and not its requester."""
    if not user.is_active or user.pk == request.requester_id:
        return False
    return bool(approver_groups_of(user=user, request=request, groups=groups))


def can_revoke(*, user, grant) -> bool:
    """True if ``user`` may end ``grant`` early: a superuser, staff allowed to change grants,
    or an approver for the request behind it (taking a right away never needs more)."""
    if not user.is_active:
        return False
    if user.is_superuser or (user.is_staff and user.has_perm("elevation.change_grant")):
        return True
    return bool(approver_groups_of(user=user, request=grant.request))


def approvals_counted(group_sets: list[list[str]], *, distinct_groups: bool) -> int:
    """How many approvals count towards N-of-M.

    ``group_sets`` holds, per approving person, the approver groups they were in. Each
    person counts once; with ``distinct_groups`` each group also counts once, and the
    answer is the size of a maximum matching of people to groups.
    """
    if not distinct_groups:
        return len(group_sets)
    options = [sorted({g.lower() for g in groups}) for groups in group_sets]
    holder: dict[str, int] = {}

    def place(person: int, tried: set[str]) -> bool:
        for group in options[person]:
            if group in tried:
                continue
            tried.add(group)
            if group not in holder or place(holder[group], tried):
                holder[group] = person
                return True
        return False

    return sum(1 for person in range(len(options)) if place(person, set()))


def approval_progress(request: AccessRequest) -> tuple[int, int]:
    """(approvals that count, approvals required) for ``request``."""
    sets = [a.approver_groups for a in request.approvals.all() if a.decision == Approval.Decision.APPROVE]
    return approvals_counted(sets, distinct_groups=request.policy.distinct_approver_groups), request.approvals_required


# -- the same rules inside the database, for lists -------------------------------------------
def approver_scope(*, user, resolved: bool = False) -> Q:
    """A filter on AccessRequest: requests whose policy or target names one of ``user``'s groups as approvers.

    By default the policies and targets are subqueries. ``resolved=True`` looks their ids up
    first (two small queries): PostgreSQL then walks a big table in index order through an
    EXISTS instead of hashing all of it, which the grants view needs.
    """
    groups = group_names_query(user)
    policies = Policy.objects.filter(JSONListMatches("approver_groups", groups)).values("id")
    targets = Target.objects.filter(JSONListMatches("approver_groups", groups)).values("id")
    if resolved:
        policies = [row["id"] for row in policies]
        targets = [row["id"] for row in targets]
    return Q(policy__in=policies) | Q(target__in=targets)


def is_approver_anywhere(*, user) -> bool:
    """True if ``user`` is an approver under any policy or for any target (two cheap queries)."""
    if not user.is_authenticated or not user.is_active:
        return False
    groups = group_names_query(user)
    return (
        Policy.objects.filter(enabled=True).filter(JSONListMatches("approver_groups", groups)).exists()
        or Target.objects.filter(JSONListMatches("approver_groups", groups)).exists()
    )


def privileged_roles_of(sender, *, user, **kwargs) -> list[str]:
    """Answer jitad.accounts.roles: approving elevation requests is a privileged role."""
    return ["elevation approver"] if is_approver_anywhere(user=user) else []


def requests_decidable_by(*, user, queryset: QuerySet | None = None) -> QuerySet:
    """Pending requests waiting for ``user``'s decision: in scope, not their own, not yet decided
    by them, from a requester who is not blocked."""
    qs = AccessRequest.objects.all() if queryset is None else queryset
    mine = Approval.objects.filter(request=OuterRef("pk"), approver=user)
    return (
        qs.filter(approver_scope(user=user), state=AccessRequest.State.PENDING, requester__is_active=True)
        .exclude(requester=user)
        .exclude(Exists(mine))
    )
