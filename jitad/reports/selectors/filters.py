"""Checking a report's filters against what exists: a mistyped name must not read as an empty estate."""
from jitad.elevation.models import Policy, Target


def report_filter_errors(*, target: str | None = None, policy: str | None = None) -> dict[str, str]:
    """A message per filter naming a target or a policy that does not exist (at most two queries)."""
    errors = {}
    if target and not Target.objects.filter(name=target).exists():
        errors["target"] = f"No target is named {target[:80]!r} (names are exact, as in the admin)."
    if policy and not Policy.objects.filter(name=policy).exists():
        errors["policy"] = f"No policy is named {policy[:80]!r} (names are exact, as in the policy file)."
    return errors
