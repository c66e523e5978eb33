"""Row builders for elevation tests that need no AD: people, targets and policies."""
from django.contrib.auth.models import Group, User

from jitad.elevation.models import Policy, Target


def user(name: str, *groups: str) -> User:
    """A local user in the given Django groups (the names AD groups are mirrored to)."""
    u = User.objects.create_user(username=name)
    for g in groups:
        u.groups.add(Group.objects.get_or_create(name=g)[0])
    return u


def target(name: str = "SRV01", **fields) -> Target:
    return Target.objects.create(name=name, group_dn=f"CN=JIT-{name}-Admins,OU=JIT,DC=jitad,DC=test", **fields)


def policy(*targets: Target, name: str = "ops-servers", **fields) -> Policy:
    """A manual-approval policy (one approver from Leads) letting Ops request ``targets``."""
    values = dict(
        approval_mode=Policy.ApprovalMode.MANUAL,
        approvals_required=1,
        eligible_groups=["Ops"],
        approver_groups=["Leads"],
        default_duration_minutes=60,
        max_duration_minutes=240,
        require_justification=False,
    )
    values.update(fields)
    p = Policy.objects.create(name=name, **values)
    p.targets.add(*targets)
    return p
