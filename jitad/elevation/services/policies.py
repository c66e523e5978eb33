"""Eligibility: which policy, if any, lets a person request a target (approvers: ``approvers``)."""
from jitad.accounts.groups import group_names

from ..models import Policy, Target


def _lower(values) -> set[str]:
    return {v.lower() for v in values}


def policy_for(*, user, target: Target) -> Policy | None:
    """The enabled policy (lowest priority number) that makes ``user`` eligible for ``target``."""
    groups = group_names(user)
    username = user.get_username().lower()
    for policy in Policy.objects.filter(enabled=True, targets=target).order_by("priority", "name"):
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
