"""A policy's workflow rules read as plain values: its stages, its time windows, its networks, its schedule.

Pure functions over a Policy (and a time or an address): the services decide with them, the
admin, portal and API show them, and the policy file's loader writes the shapes they read
(``Policy.stages``, ``Policy.time_windows``, ``Policy.networks``). docs/approvals.md explains
every rule.
"""
import ipaddress
from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models import Policy

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# What a time window decides for a request (Policy.time_windows rules' ``then`` and ``otherwise``).
WINDOW_POLICY = "policy"  # the policy's approval as written
WINDOW_AUTO = "auto"  # granted without approvers
WINDOW_EXTRA_STAGE = "extra_stage"  # the policy's stages, then the window's extra stage
WINDOW_REFUSE = "refuse"  # refused, with the hours when it would be accepted


def stage_default(*, name: str = "approval", approvals_required: int = 1, approver_groups=(), distinct_groups=False,
                  escalation: dict | None = None, timeout: dict | None = None) -> dict:
    """One stage in the stored shape (Policy.stages, AccessRequest.stages)."""
    return {
        "name": name,
        "approvals_required": int(approvals_required),
        "approver_groups": list(approver_groups),
        "distinct_groups": bool(distinct_groups),
        "escalation": escalation,  # {after_minutes, groups, notify, add_as_approvers} | None
        "timeout": timeout,  # {after_minutes, action: "deny" | "approve"} | None
    }


def policy_stages(policy: Policy) -> list[dict]:
    """The stages a manual request under ``policy`` passes, in order; [] for automatic approval.

    ``Policy.stages`` when set (the policy file always sets it); otherwise one stage built
    from the single-stage fields (policies made in the admin before stages existed).
    """
    if policy.approval_mode == Policy.ApprovalMode.AUTO:
        return []
    if policy.stages:
        return [dict(stage) for stage in policy.stages]
    return [stage_default(approvals_required=policy.approvals_required, approver_groups=policy.approver_groups or [],
                          distinct_groups=policy.distinct_approver_groups)]


def days_of(names) -> set[int]:
    """Weekday numbers (Monday 0) of ``["mon-fri", "sun"]``; a range may wrap (``fri-mon``)."""
    days = set()
    for name in names:
        first, _, last = name.partition("-")
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if last else a
        day = a
        while True:
            days.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    return days


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    return time.max if hours == 24 else time(hours, minutes)


def hours_of(text: str) -> tuple[time, time]:
    """(start, end) of ``"08:00-18:00"``; ``24:00`` is the end of the day; start > end crosses midnight."""
    start, end = text.split("-")
    return _clock(start), _clock(end)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo | None:
    """The time zone named ``name`` (IANA), or None when this machine does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _rule_matches(rule: dict, local: datetime) -> bool:
    day, now = local.weekday(), local.time()
    days = days_of(rule["days"]) if rule.get("days") else set(range(7))
    if "hours" not in rule:
        return day in days
    start, end = hours_of(rule["hours"])
    if start <= end:
        return day in days and start <= now < end
    # Across midnight: 22:00-06:00 on "mon" covers Monday 22:00 to Tuesday 06:00.
    return (day in days and now >= start) or ((day - 1) % 7 in days and now < end)


def window_action(policy: Policy, at: datetime) -> str:
    """What ``policy``'s time windows decide for access starting at ``at``: the first matching rule's
    ``then``, else ``otherwise``; ``policy`` when the policy has no windows."""
    windows = policy.time_windows or {}
    if not windows:
        return WINDOW_POLICY
    tz = zone(windows.get("timezone", "UTC")) or ZoneInfo("UTC")
    local = at.astimezone(tz)
    for rule in windows.get("rules", []):
        if _rule_matches(rule, local):
            return rule["then"]
    return windows.get("otherwise", WINDOW_POLICY)


def window_text(policy: Policy) -> str:
    """The windows in words, for a refusal and the pages: "mon-fri 08:00-18:00 Europe/Paris: policy; otherwise refuse"."""
    windows = policy.time_windows or {}
    if not windows:
        return ""
    parts = []
    for rule in windows.get("rules", []):
        when = " ".join(filter(None, [",".join(rule.get("days", [])) or "every day", rule.get("hours", "")]))
        parts.append(f"{when}: {rule['then'].replace('_', ' ')}")
    parts.append(f"otherwise {windows.get('otherwise', WINDOW_POLICY).replace('_', ' ')}")
    return f"{'; '.join(parts)} ({windows.get('timezone', 'UTC')})"


def off_hours(policy: Policy, at: datetime) -> bool:
    """True when ``at`` falls outside ``policy``'s working hours: its windows say other than policy or auto.

    A policy without windows has no working hours of its own (the reports' own off-hours rule applies)."""
    return bool(policy.time_windows) and window_action(policy, at) not in (WINDOW_POLICY, WINDOW_AUTO)


def network_allows(policy: Policy, address: str | None) -> bool:
    """True when ``policy`` names no networks, or ``address`` lies in one of them."""
    if not policy.networks:
        return True
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    for cidr in policy.networks:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if ip.version == network.version and ip in network:
            return True
        if ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped in network:
            return True
    return False
