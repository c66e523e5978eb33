"""Who may be in a managed JIT group: members a grant backs, and a target's standing members.

The reconciler removes anyone else; held removals (members the reconciler found but
may not remove at once) are checked against the same view before they go. Both read it
here, so neither imports the other's internals.
"""
from collections import defaultdict

from jitad import directory

from ..models import Grant, Target


def managed_groups() -> dict[str, set[str]]:
    """{group DN: normalised DNs allowed to stay without a grant} over enabled targets."""
    groups: dict[str, set[str]] = defaultdict(set)
    for t in Target.objects.filter(enabled=True).only("group_dn", "standing_members"):
        groups[t.group_dn] |= {directory.normalize_dn(dn) for dn in t.standing_members}
    return groups


def backed(group_dn: str) -> set[str]:
    """Normalised DNs of ``group_dn``'s members a grant backs (one in a state where the membership may exist in AD):
    the person's own account, or the grant's ephemeral account."""
    grants = Grant.objects.filter(group_dn=group_dn, state__in=Grant.BACKING_STATES).order_by()  # a set: no sort
    personal = grants.filter(account="").exclude(user_dn="").values_list("user_dn", flat=True)
    ephemeral = grants.exclude(account="").exclude(account_dn="").values_list("account_dn", flat=True)
    return {directory.normalize_dn(dn) for dn in [*personal, *ephemeral]}
