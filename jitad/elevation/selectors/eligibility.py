"""Eligibility: which policy, if any, lets a person request a target, and the searchable list of such targets.

``policy_for`` is the authority when a request is made. The list queries cost a fixed
number of database round trips, however many targets exist, and agree with it: an
enabled policy covers a person by user name or by one of their Django group names
(case-insensitive), and the lowest (priority, name) wins. A live
``EligibilityExclusion`` (a review removed the person) takes that policy away from them
whatever their groups say; each answer asks it inside the same query, so it costs no
round trip. Approvers: ``approvers``.
"""
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q

from jitad.accounts.groups import group_names

from ..models import EligibilityExclusion, Policy, Target

MAX_TERMS = 5


def _lower(values) -> set[str]:
    return {v.lower() for v in values}


def _not_excluded(user) -> Exists:
    """A filter on Policy: no live exclusion takes the policy away from ``user``."""
    return ~Exists(EligibilityExclusion.objects.filter(policy=OuterRef("pk"), user_id=user.pk, lifted_at__isnull=True))


def policy_for(*, user, target: Target) -> Policy | None:
    """The enabled policy (lowest priority number) that makes ``user`` eligible for ``target``."""
    groups = group_names(user)
    username = user.get_username().lower()
    for policy in Policy.objects.filter(_not_excluded(user), enabled=True, targets=target).order_by("priority", "name"):
        if username in _lower(policy.eligible_users) or groups & _lower(policy.eligible_groups):
            return policy
    return None


def eligible_targets(*, user) -> list[tuple[Target, Policy]]:
    """Every enabled target ``user`` may request, with the policy that applies."""
    result = []
    for target in Target.objects.filter(enabled=True).prefetch_related("policies"):
        policy = policy_for(user=user, target=target)
        if policy is not None:
            result.append((target, policy))
    return result


@dataclass(frozen=True)
class EligibilityPage:
    """One page of (target, policy) pairs, and how many pairs match in all."""

    items: list[tuple[Target, Policy]]
    total: int


def _covering_policies(user) -> list[Policy]:
    """Enabled policies naming ``user`` or one of their groups and not taken from them, best (lowest priority, name) first."""
    groups = group_names(user)
    username = user.get_username().lower()
    return [
        p
        for p in Policy.objects.filter(_not_excluded(user), enabled=True).order_by("priority", "name")
        if username in _lower(p.eligible_users) or groups & _lower(p.eligible_groups)
    ]


def _search_filter(q: str) -> Q:
    """Every word of ``q`` must appear in the target's name, host name or description."""
    condition = Q()
    for term in (q or "").split()[:MAX_TERMS]:
        condition &= Q(name__icontains=term) | Q(hostname__icontains=term) | Q(description__icontains=term)
    return condition


# What a list of eligible targets shows of each (the portal's search, the REST API): not its AD group, rules
# or standing members, which are neither sent by the database nor decoded for every row.
TARGET_SHOWN = ("id", "name", "kind", "hostname", "description")


def eligibility_search(*, user, q: str = "", limit: int, offset: int = 0) -> EligibilityPage:
    """The enabled targets ``user`` may request, matching ``q``, by name; five queries at most.

    Of each target only ``TARGET_SHOWN`` is read.
    """
    policies = _covering_policies(user)
    if not policies:
        return EligibilityPage(items=[], total=0)
    links = Policy.targets.through.objects.filter(policy_id__in=[p.id for p in policies])
    targets = Target.objects.filter(_search_filter(q), enabled=True, id__in=links.values("target_id"))
    total = targets.count()
    shown = targets.only(*TARGET_SHOWN).order_by("name", "id")
    page = list(shown[offset : offset + limit]) if total > offset else []
    if not page:
        return EligibilityPage(items=[], total=total)
    rank = {p.id: i for i, p in enumerate(policies)}
    best: dict[int, int] = {}
    for target_id, policy_id in links.filter(target_id__in=[t.id for t in page]).values_list("target_id", "policy_id"):
        if target_id not in best or rank[policy_id] < rank[best[target_id]]:
            best[target_id] = policy_id
    return EligibilityPage(items=[(t, policies[rank[best[t.id]]]) for t in page], total=total)


def policies_for_targets(*, user, target_ids: set[int]) -> dict[int, Policy]:
    """The policy that lets ``user`` request each target (as ``policy_for`` decides), in three queries."""
    if not target_ids:
        return {}
    policies = _covering_policies(user)
    rank = {p.id: i for i, p in enumerate(policies)}
    best: dict[int, Policy] = {}
    links = Policy.targets.through.objects.filter(policy_id__in=list(rank), target_id__in=list(target_ids))
    for target_id, policy_id in links.values_list("target_id", "policy_id"):
        if target_id not in best or rank[policy_id] < rank[best[target_id].id]:
            best[target_id] = policies[rank[policy_id]]
    return best


def eligible_target_get(*, user, target_id) -> tuple[Target, Policy] | None:
    """The enabled target with ``target_id`` and the policy that lets ``user`` request it, or None."""
    try:
        target_id = int(target_id)
    except (TypeError, ValueError):
        return None
    target = Target.objects.filter(pk=target_id, enabled=True).first()
    if target is None:
        return None
    policy = policy_for(user=user, target=target)
    return (target, policy) if policy is not None else None
