"""The shape of one access-history row: a principal holding a target's right over an interval."""
from dataclasses import asdict, dataclass, field
from datetime import datetime


class Source:
    """Where a row comes from (docs/access-history.md)."""

    GRANT = "grant"                # a JIT grant (request, approvals, extensions)
    STANDING = "standing"          # a standing member of a server's local Administrators, seen by scans
    OUT_OF_BAND = "out_of_band"    # a member of a JIT group no grant backed, removed by the reconciler
    HELD = "held_removal"          # such a member held for an operator's say (the reconciler's brake)
    BREAKGLASS = "breakglass"      # a break-glass checkout of an account that confers the right

    ALL = (GRANT, STANDING, OUT_OF_BAND, HELD, BREAKGLASS)


@dataclass
class Holding:
    """One principal holding one right over ``[start, end]`` (``end`` None: still held now).

    ``person`` is the jitad user when one is known (grants, checkouts, members whose DN or SID
    matches a user); ``principal`` is how the record names who held it (a user name, DOMAIN\\name,
    a DN or a SID). ``evidence`` holds what the source records: the grant's request, approvers,
    justification and ticket; the scans that saw a standing member; the checkout's approvers.
    """

    source: str
    target: str | None
    target_id: int | None
    principal: str
    person: str | None
    start: datetime
    end: datetime | None
    ended: str
    record_id: int
    evidence: dict = field(default_factory=dict)

    @property
    def ongoing(self) -> bool:
        return self.end is None

    def as_dict(self) -> dict:
        """The row as plain data (the API's shape): datetimes stay datetimes for the serializer."""
        data = asdict(self)
        data["ongoing"] = self.ongoing
        return data


def overlaps(start: datetime, end: datetime | None, lo: datetime, hi: datetime) -> bool:
    """True when the closed interval [start, end or now] meets [lo, hi]: both ends count."""
    return start <= hi and (end is None or end >= lo)


def approvals_of(approvals) -> list[dict]:
    """A request's (or checkout's) decisions, oldest first: who, what, when, with their comment."""
    return [
        {"approver": a.approver.get_username(), "decision": a.decision, "comment": a.comment, "at": a.at}
        for a in sorted(approvals, key=lambda a: (a.at, a.pk))
    ]
