"""Ephemeral accounts: which grants use one, with what settings, and which accounts a grant backs."""
from jitad import directory

from ..models import Grant, Policy, Target

PASSWORD_CLASSES = ("upper", "lower", "digit", "symbol")
DEFAULTS = {"suffix_length": 4, "password": {"length": 24, "classes": list(PASSWORD_CLASSES)}}


def ephemeral_settings(value: dict | None) -> dict | None:
    """A stored ``ephemeral`` setting with its defaults filled in, or None when it is empty (no ephemeral account)."""
    if not value or not value.get("ou"):
        return None
    password = {**DEFAULTS["password"], **(value.get("password") or {})}
    return {"ou": value["ou"], "suffix_length": value.get("suffix_length", DEFAULTS["suffix_length"]),
            "password": password}


def ephemeral_config(*, target: Target, policy: Policy) -> dict | None:
    """How grants of ``target`` under ``policy`` get an ephemeral account (the target's setting wins), or None."""
    return ephemeral_settings(target.ephemeral) or ephemeral_settings(policy.ephemeral)


def ephemeral_ous() -> list[str]:
    """Every OU a target or an enabled policy names for ephemeral accounts (what the reconciler looks in)."""
    ous = {}
    for value in [*Target.objects.exclude(ephemeral={}).values_list("ephemeral", flat=True),
                  *Policy.objects.exclude(ephemeral={}).values_list("ephemeral", flat=True)]:
        settings = ephemeral_settings(value)
        if settings:
            ous.setdefault(directory.normalize_dn(settings["ou"]), settings["ou"])
    for dn in (Grant.objects.exclude(account="").exclude(account=Grant.Account.DELETED)
               .values_list("account_dn", flat=True).distinct()):
        parent = account_ou(dn)
        ous.setdefault(directory.normalize_dn(parent), parent)
    return sorted(ous.values())


def account_ou(dn: str) -> str:
    """The OU an ephemeral account's DN sits in."""
    return directory.split_dn(dn)[1]


def ephemeral_backed(dns) -> set[str]:
    """Of ``dns`` (ephemeral account DNs), those a grant still owns: planned, created, or not yet deleted."""
    keys = {directory.normalize_dn(dn): dn for dn in dns}
    if not keys:
        return set()
    owned = Grant.objects.exclude(account="").exclude(account=Grant.Account.DELETED).values_list("account_dn", flat=True)
    owned_keys = {directory.normalize_dn(dn) for dn in owned}
    return {dn for key, dn in keys.items() if key in owned_keys}


def ephemeral_to_delete(*, free, ready):
    """Ended grants whose ephemeral account is still to be deleted (after the server's check, if any)."""
    return Grant.objects.filter(
        free, ready, state=Grant.State.REVOKED,
        account__in=[Grant.Account.PLANNED, Grant.Account.CREATED, Grant.Account.DISABLED, Grant.Account.DELETE_FAILED],
    ).exclude(host_revoke_check=Grant.HostCheck.PENDING)
