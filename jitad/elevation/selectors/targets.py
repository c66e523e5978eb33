"""Targets: finding one by name or id, the servers to scan, and whether a group may be a target's JIT group."""
import re
from dataclasses import dataclass

from django.db.models import QuerySet

from jitad import directory

from ..models import Target

ID_TEXT = re.compile(r"[0-9]{1,18}")  # a row id as text; fits a 64-bit integer column


def target_find(*, ref) -> Target | None:
    """The target named exactly ``ref``, or else with id ``ref``; None if there is none."""
    if isinstance(ref, bool) or ref is None:
        return None
    if isinstance(ref, int):
        return Target.objects.filter(pk=ref).first() if 0 < ref < 2**63 else None
    ref = str(ref).strip()
    target = Target.objects.filter(name=ref).first()
    if target is None and ID_TEXT.fullmatch(ref):
        target = Target.objects.filter(pk=int(ref)).first()
    return target


def scannable_targets() -> QuerySet:
    """Enabled targets with a WinRM endpoint: the servers the standing-admin scan reads."""
    return Target.objects.filter(enabled=True).exclude(winrm_url="")


@dataclass(frozen=True)
class GroupCheck:
    """The DC's verdict on ``dn``: ``problem`` ('' when jitad may manage it), or why it could not be asked."""

    dn: str
    nested_into_protected: bool = False
    problem: str = ""
    unavailable: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and not self.unavailable


def target_group_check(*, group_dn: str, nested_into_protected: bool = False) -> GroupCheck:
    """Whether ``group_dn`` may be a target's group: under the JIT OU, a group in AD, not protected.

    ``nested_into_protected`` is the target's tier-0 opt-in: its group may be nested into a
    protected group (and so adminCount=1), never be a well-known privileged group itself.

    Reads from the DC (changes nothing): call it with no transaction open. A DC that cannot
    be asked is an answer too (``unavailable``), never an exception.
    """
    key = (group_dn, bool(nested_into_protected))
    try:
        problems = directory.group_problems([key])
    except directory.DirectoryError as e:
        return GroupCheck(dn=group_dn, nested_into_protected=key[1], unavailable=str(e))
    return GroupCheck(dn=group_dn, nested_into_protected=key[1], problem=problems[key])


def group_nested_into_protected(group_dn: str) -> bool:
    """True when a target naming ``group_dn`` is marked as a tier-0 JIT group (nested on purpose).

    For the seam's ``add_member`` where only the group is known (a member put back after a
    removal raced a new grant); a grant's own add passes its target's flag.
    """
    return Target.objects.filter(group_dn=group_dn, nested_into_protected=True).exists()
