"""Targets, eligibility policies, access requests, approvals, grants, and reconciler removals held for an operator."""
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from jitad.engine.models import ClaimedWork

# A SID (S-1-5-21-...-1105), or *-<RID> for that RID on any machine or domain (*-500).
# \Z, not $: "$" would also accept a value ending in a newline.
ALLOWED_ADMIN_PATTERN = r"^(S-1-[0-9]+(-[0-9]+)+|\*-[0-9]+)\Z"
WINRM_URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s?#]*)?\Z"


class Target(models.Model):
    """Something a person can be made admin of: a server, or a domain-level role.

    The right is conferred by membership of ``group_dn`` (a JIT group, normally empty).
    ``standing_members`` lists DNs the reconciler must leave in that group (e.g. a
    nested break-glass group); everyone else must be backed by a live grant.
    """

    class Kind(models.TextChoices):
        SERVER = "server", "Server"
        DOMAIN_ROLE = "domain_role", "Domain role"

    class Tier(models.IntegerChoices):
        """Microsoft's enterprise access model: what a compromise of the target would expose."""

        IDENTITY = 0, "Tier 0: identity (domain controllers, AD)"
        SERVERS = 1, "Tier 1: servers and applications"
        DEVICES = 2, "Tier 2: workstations and devices"

    name = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SERVER)
    tier = models.PositiveSmallIntegerField(choices=Tier.choices, default=Tier.SERVERS, db_index=True)
    hostname = models.CharField(max_length=255, blank=True, help_text="FQDN, for servers")
    description = models.TextField(blank=True)
    group_dn = models.CharField(max_length=512, help_text="the AD group that grants the right")
    standing_members = models.JSONField(default=list, blank=True)
    nested_into_protected = models.BooleanField(
        "nested into a protected group on purpose (tier 0)", default=False,
        help_text="the JIT group is nested into Domain Admins or another protected group by design, so AD's "
                  "SDProp marks it adminCount=1: accept that for this group (never Domain Admins itself "
                  "or another well-known privileged group)",
    )
    approver_groups = models.JSONField(
        default=list, blank=True,
        help_text="AD group names whose members may approve requests for this target, besides the policy's",
    )
    winrm_url = models.CharField(
        "WinRM URL", max_length=255, blank=True,
        help_text="e.g. https://srv01.corp.example:5986/wsman; blank: the right is not checked on the server",
    )
    winrm_transport = models.CharField(
        "WinRM authentication", max_length=16, default="ntlm",
        choices=[("ntlm", "NTLM"), ("kerberos", "Kerberos"), ("certificate", "Client certificate (HTTPS)"),
                 ("basic", "Basic (HTTPS only)")],
    )
    winrm_profile = models.CharField(
        "WinRM credential profile", max_length=64, blank=True,
        help_text="JITAD_WINRM_PROFILE_<NAME>_* in the environment; blank: the default JITAD_WINRM_* profile",
    )
    allowed_admins = models.JSONField(
        default=list, blank=True,
        help_text="SIDs (or *-RID) allowed in this server's local Administrators besides the JIT group "
                  "and JITAD_HOST_ALLOWED_ADMINS",
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def clean(self):
        if self.allowed_admins is None:  # an emptied admin field
            self.allowed_admins = []
        url = (self.winrm_url or "").strip()
        if url and not re.match(WINRM_URL_PATTERN, url):
            raise ValidationError({"winrm_url": "a WinRM URL looks like https://srv01.corp.example:5986/wsman"})
        if url.lower().startswith("http://") and self.winrm_transport in ("basic", "certificate"):
            raise ValidationError({"winrm_transport": "Basic and certificate authentication need an https:// URL"})
        if not isinstance(self.allowed_admins, list) or any(
            not isinstance(a, str) or not re.match(ALLOWED_ADMIN_PATTERN, a) for a in self.allowed_admins
        ):
            raise ValidationError({"allowed_admins": "a list of SIDs (S-1-5-21-...) or *-RID entries (*-500)"})

    @property
    def host_checked(self) -> bool:
        """True when grants of this target are verified on the server over WinRM."""
        return bool(self.winrm_url)

    def __str__(self):
        return self.name


class Policy(models.Model):
    """Who may request which targets, for how long, and who must approve."""

    class ApprovalMode(models.TextChoices):
        AUTO = "auto", "Automatic"
        MANUAL = "manual", "Approvers"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    priority = models.PositiveIntegerField(default=100, help_text="lowest number wins when several policies match")
    targets = models.ManyToManyField(Target, related_name="policies", blank=True)
    eligible_groups = models.JSONField(default=list, blank=True, help_text="AD group names (sAMAccountName)")
    eligible_users = models.JSONField(default=list, blank=True, help_text="AD user names (sAMAccountName)")
    default_duration_minutes = models.PositiveIntegerField(default=60)
    max_duration_minutes = models.PositiveIntegerField(
        default=240, help_text="the longest a grant may last, its extensions included",
    )
    approval_mode = models.CharField(max_length=8, choices=ApprovalMode.choices, default=ApprovalMode.MANUAL)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_groups = models.JSONField(default=list, blank=True, help_text="AD group names whose members may approve")
    distinct_approver_groups = models.BooleanField(
        default=False,
        help_text="each approval must come from a different approver group (e.g. a peer and a manager)",
    )
    allow_bulk_decisions = models.BooleanField(
        default=False, help_text="approvers may decide several of these requests in one admin action"
    )
    notify = models.JSONField(
        default=list, blank=True,
        help_text="names of notification destinations (JITAD_NOTIFY_<NAME>) told of new requests to decide",
    )
    pending_timeout_minutes = models.PositiveIntegerField(default=240)
    require_justification = models.BooleanField(default=True)
    min_justification_length = models.PositiveIntegerField(default=10)
    require_ticket = models.BooleanField(default=False)
    ticket_pattern = models.CharField(max_length=200, blank=True, help_text="regular expression a ticket must match")
    max_extensions = models.PositiveSmallIntegerField(default=2)
    end_sessions_on_revoke = models.BooleanField(
        default=False,
        help_text="when a grant ends, log the user off the server and stop their processes, "
                  "so no logon token keeps the right",
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]
        verbose_name_plural = "policies"

    def __str__(self):
        return self.name

    def clean(self):
        if self.default_duration_minutes > self.max_duration_minutes:
            raise ValidationError("the default duration exceeds the maximum")
        if self.approval_mode == self.ApprovalMode.MANUAL and self.approvals_required < 1:
            raise ValidationError("manual approval needs at least one approver")
        if self.distinct_approver_groups and self.approvals_required > len(self.approver_groups or []):
            # Target approver groups may add more at decision time; the policy alone must suffice.
            raise ValidationError("distinct approver groups need at least as many groups as approvals required")
        if self.ticket_pattern:
            try:
                re.compile(self.ticket_pattern)
            except re.error as e:
                raise ValidationError(f"ticket pattern is not a valid regular expression: {e}") from e


class AccessRequest(models.Model):
    """A person's request for a target, for a duration: new access, or an extension of a grant."""

    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"
        EXPIRED_UNAPPROVED = "expired_unapproved"
        CANCELLED = "cancelled"

    class Kind(models.TextChoices):
        NEW = "new"
        EXTENSION = "extension"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NEW)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_requests")
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="requests")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="requests")
    extends = models.ForeignKey(
        "Grant", null=True, blank=True, on_delete=models.PROTECT, related_name="extension_requests"
    )
    duration_minutes = models.PositiveIntegerField()
    justification = models.TextField(blank=True)
    ticket = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=24, choices=State.choices, default=State.PENDING, db_index=True)
    approvals_required = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    pending_until = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "pending_until"]),
            models.Index(fields=["state", "created_at"]),
            models.Index(fields=["ticket"]),  # the admin's search matches tickets exactly
        ]

    def __str__(self):
        return f"#{self.pk} {self.requester} → {self.target} ({self.duration_minutes} min)"


class Approval(models.Model):
    """One approver's decision on a request. One per person per request.

    ``approver_groups`` records which of the request's approver groups the approver was
    in when deciding: with ``Policy.distinct_approver_groups`` each approval must count
    for a different group, and the record says afterwards why someone could decide.
    """

    class Decision(models.TextChoices):
        APPROVE = "approve"
        DENY = "deny"

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals_given")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    approver_groups = models.JSONField(default=list, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "approver"], name="one_decision_per_approver")]


class Grant(ClaimedWork):
    """A time-boxed membership of ``user`` in ``group_dn``, and the work to add and remove it.

    States (ARCHITECTURE.md): approved → granting → active → revoking → revoked, with
    grant_failed / revoke_failed when attempts ran out. For a target checked over WinRM,
    ``active`` means the server itself showed the right (``host_verified_at``); until it
    does the grant is ``unverified`` (the AD membership exists; the reason is in
    ``last_error``), re-checked with backoff for JITAD_HOST_VERIFY_WINDOW_MINUTES from
    ``unverified_since``, alerted on entry and when the checks give up. After revocation
    ``host_revoke_check`` records whether the server confirmed the right gone (alerted, and the sweeper keeps
    going). Work on a grant is *claimed*: ``claim_token`` names the one task allowed to
    act and ``lease_until`` when that claim lapses if the task vanished. A grant with
    ``revoke_requested_at`` set (early release, admin revoke) or ``expires_at`` in the past
    is driven to removal by the sweeper, however long that takes.
    """

    class State(models.TextChoices):
        APPROVED = "approved"
        GRANTING = "granting"
        ACTIVE = "active"
        REVOKING = "revoking"
        REVOKED = "revoked"
        GRANT_FAILED = "grant_failed"
        UNVERIFIED = "unverified"
        REVOKE_FAILED = "revoke_failed"

    class HostCheck(models.TextChoices):
        """After revocation: did the server confirm the user's admin right is gone?"""

        PENDING = "pending", "being checked"
        VERIFIED = "verified", "confirmed gone"
        STILL_ADMIN = "still_admin", "still admin by another path"
        FAILED = "failed", "could not be checked"

    class RevokeReason(models.TextChoices):
        EXPIRED = "expired"
        RELEASED = "released", "released early"
        ADMIN = "admin_revoked", "revoked by an administrator"
        FAILED = "grant_failed", "cleanup after a failed grant"

    request = models.OneToOneField(AccessRequest, on_delete=models.PROTECT, related_name="grant")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants")
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="grants")
    group_dn = models.CharField(max_length=512)
    user_dn = models.CharField(max_length=512, blank=True)
    user_guid = models.CharField(max_length=36, blank=True)
    user_sid = models.CharField(max_length=184, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.APPROVED)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    revoke_requested_at = models.DateTimeField(null=True, blank=True)
    revoke_requested_by = models.CharField(max_length=150, blank=True)
    revoke_reason = models.CharField(max_length=16, choices=RevokeReason.choices, blank=True)
    revoke_comment = models.TextField(blank=True, help_text="why it was revoked, as told to the holder")
    revoked_at = models.DateTimeField(null=True, blank=True)
    expiry_warned_at = models.DateTimeField(null=True, blank=True, help_text="when the holder was told it ends soon")
    membership_removed = models.BooleanField(
        null=True, blank=True, help_text="False when another live grant kept the membership"
    )
    host_verified_at = models.DateTimeField(null=True, blank=True, help_text="when the server showed the right")
    unverified_since = models.DateTimeField(null=True, blank=True)
    host_revoke_check = models.CharField(max_length=16, choices=HostCheck.choices, blank=True, default="")
    host_detail = models.TextField(blank=True, help_text="what the last check on the server found")
    extensions = models.PositiveSmallIntegerField(default=0)
    retryable = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "expires_at"]),
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["user", "group_dn"]),
            models.Index(fields=["user", "target", "created_at"]),
            models.Index(fields=["created_at", "id"]),  # the grants view's history, newest first
            models.Index(fields=["claim_token"]),
        ]

    def __str__(self):
        return f"grant #{self.pk} {self.user} on {self.target} [{self.state}]"

    LIVE_STATES = (State.APPROVED, State.GRANTING, State.ACTIVE, State.UNVERIFIED, State.GRANT_FAILED)
    # States in which the membership may exist in AD: the reconciler leaves these alone.
    BACKING_STATES = (State.GRANTING, State.ACTIVE, State.UNVERIFIED, State.GRANT_FAILED, State.REVOKING,
                      State.REVOKE_FAILED)


class HostScan(models.Model):
    """One standing-admin scan of one server's local Administrators group."""

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="host_scans")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    members = models.PositiveIntegerField(default=0)
    standing = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["target", "-started_at"])]

    def __str__(self):
        return f"scan of {self.target} at {self.started_at:%Y-%m-%d %H:%M}"


class StandingAdmin(models.Model):
    """A member of a server's local Administrators that no JIT grant explains: standing privilege.

    Open while ``resolved_at`` is empty; a scan that no longer sees it resolves it.
    """

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="standing_admins")
    sid = models.CharField(max_length=184)
    name = models.CharField(max_length=255, blank=True, help_text="DOMAIN\\name, or the SID when it no longer resolves")
    path = models.CharField(max_length=512, blank=True)
    member_class = models.CharField(max_length=32, blank=True)
    is_group = models.BooleanField(default=False)
    orphaned = models.BooleanField(default=False, help_text="the SID resolves to no account (deleted)")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["target__name", "name"]
        constraints = [models.UniqueConstraint(fields=["target", "sid"], name="one_finding_per_sid")]

    def __str__(self):
        return f"{self.name or self.sid} on {self.target}"


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
