"""The reconciler's record: removals held for an operator, the readings of each managed group, and where the group watch left off in each DC's change feed."""
from django.db import models
from django.utils import timezone

from jitad.engine.models import ClaimedWork


class HeldRemoval(ClaimedWork):
    """A member the reconciler would have removed from a JIT group, held for an operator's say.

    One run may remove at most JITAD_RECONCILE_MAX_REMOVE_SHARE of a group's members (and
    always JITAD_RECONCILE_MAX_REMOVE_MIN): a wrong database view (a restored backup, a
    target pointed at the wrong group) must not empty a group people depend on. Beyond the
    limit the run removes none of that batch; each would-be removal is a row here, ``pending``
    until an operator confirms it (``confirmed``: the worker removes it as claimed work,
    ``claim_token`` + ``lease_until`` like a grant, then ``done``) or discards it
    (``discarded``: the member stays, and the reconciler leaves it alone for as long as it
    stays in the group; ``left_at`` is when it was seen gone). A pending hold whose member
    left the group or became backed by a grant meanwhile is ``cleared`` by the next run.
    Rows are never deleted: they are the record of what was held and who decided.
    """

    class State(models.TextChoices):
        PENDING = "pending", "waiting for an operator"
        CONFIRMED = "confirmed", "confirmed, being removed"
        DONE = "done", "removed"
        DISCARDED = "discarded", "discarded, left in the group"
        CLEARED = "cleared", "no longer needed"

    group_dn = models.CharField(max_length=512)
    member_dn = models.CharField(max_length=512)
    member_key = models.CharField(max_length=512, help_text="the member's DN, normalised")
    batch = models.UUIDField(help_text="the reconcile run that held it")
    reason = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    held_at = models.DateTimeField(default=timezone.now)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)
    left_at = models.DateTimeField(null=True, blank=True, help_text="a discarded member seen gone from the group")

    OPEN_STATES = (State.PENDING, State.CONFIRMED)

    class Meta:
        ordering = ["-held_at", "id"]
        indexes = [
            models.Index(fields=["group_dn", "state"]),
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["claim_token"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["group_dn", "member_key"], condition=models.Q(state__in=["pending", "confirmed"]),
                                    name="one_open_hold_per_member"),
        ]

    def __str__(self):
        return f"held removal #{self.pk} of {self.member_dn} from {self.group_dn} [{self.state}]"


class GroupReading(models.Model):
    """The members the reconciler read in a JIT group at its last run: who joined since, for its brake.

    A member no grant backs that was *not* in the group at the previous run (a reading no older
    than a few reconcile intervals) was added since, out of band: it is removed at once, however
    many joined with it, so an attacker who adds decoys beside themselves does not trip the
    brake and stay. The brake (``HeldRemoval``) applies to members that were already there: a
    wrong database view (a restored backup, a target pointed at another group) shows as many
    long-standing members losing their backing. Without a fresh reading (the first run, or
    after jitad stopped reconciling for a while) every unbacked member counts as long-standing.
    Members are kept as short hashes of their normalised DNs, only what the comparison needs.
    """

    group_key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the group's normalised DN")
    group_dn = models.CharField(max_length=512)
    members = models.JSONField(default=list, help_text="hashes of the normalised member DNs")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the sorted member hashes")
    read_at = models.DateTimeField()

    def __str__(self):
        return f"{len(self.members)} member(s) of {self.group_dn} read at {self.read_at:%Y-%m-%d %H:%M:%S}"


class DirectoryCookie(models.Model):
    """Where the group watch left off reading a DC's change feed (DirSync): one cookie per DC.

    A cookie is the DC's own replication state and means nothing to another DC, so it is kept
    under the name of the DC that issued it (its NTDS Settings DN) and shown only to that DC.
    Each DC goes on from its own cookie, whichever DC answered the runs in between (a change
    replicated into a DC gets a USN of that DC's own, after its cookie, so it is reported there
    too); a DC with no cookie here (the first run) or one that refuses its cookie is read from
    the start: the watch then checks every managed group once (a full reconcile) and keeps the
    fresh cookie. ``current`` marks the DC that answered the last run (for people reading it). A cookie is saved only after the groups it
    reported were checked, so a run that fails half-way reads the same changes again.
    """

    dc = models.CharField(max_length=512, unique=True, help_text="the DC's dsServiceName (its NTDS Settings DN)")
    cookie = models.BinaryField()
    url = models.CharField(max_length=512, blank=True, help_text="the URL jitad reached the DC at, last time")
    current = models.BooleanField(default=False, help_text="the DC that answered the watch's last run")
    started_at = models.DateTimeField(help_text="when this DC was last read from the start")
    read_at = models.DateTimeField(help_text="when the cookie was last saved")

    def __str__(self):
        return f"change feed cookie of {self.dc} (read {self.read_at:%Y-%m-%d %H:%M:%S})"
