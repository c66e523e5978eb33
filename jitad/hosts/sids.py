"""What a SID sent to a host may be: the only identity jitad's scripts accept as input."""
import re

SID_RE = re.compile(r"^S-1-[0-9-]+$")
ACCOUNT_SID_RE = re.compile(r"S-1-5-21-[0-9]+-[0-9]+-[0-9]+-([0-9]+)")


def is_sid(value) -> bool:
    """True for a SID in string form (S-1-...), the only input jitad's scripts accept."""
    return isinstance(value, str) and bool(SID_RE.fullmatch(value)) and not value.endswith("-") and "--" not in value


def is_account_sid(value) -> bool:
    """A person's account (S-1-5-21-<domain>-<RID ≥ 1000>): never SYSTEM, a service or a built-in."""
    m = ACCOUNT_SID_RE.fullmatch(value) if isinstance(value, str) else None
    return bool(m) and int(m.group(1)) >= 1000
