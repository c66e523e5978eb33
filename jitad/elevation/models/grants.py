"""Grants: a person in a target's JIT group for a window, claimed work for the engine."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from jitad.engine.models import ClaimedWork

from .catalog import Target
from .requests import AccessRequest


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
        SCHEDULED = "scheduled"  # approved, waiting for its start or for an exclusive target to be free
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
    # No index of its own: the (user, group_dn) and (user, target, created_at) indexes begin with it, and each
    # index more is written again by every change of a grant's state (a mass expiry changes each grant twice).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants", db_index=False)
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="grants")
    group_dn = models.CharField(max_length=512)
    user_dn = models.CharField(max_length=512, blank=True)
    user_guid = models.CharField(max_length=36, blank=True)
    user_sid = models.CharField(max_length=184, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.APPROVED)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    starts_at = models.DateTimeField(null=True, blank=True, help_text="a scheduled grant starts here, not before")
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
    # -- ephemeral account (docs/ephemeral.md): the grant is held by an AD user created for it alone ------
    class Account(models.TextChoices):
        """Where the grant's ephemeral account is in its life ("" for a grant held by the person's own account)."""

        NONE = "", "the person's own account"
        PLANNED = "planned", "to be created"
        CREATED = "created", "created"
        DISABLED = "disabled", "disabled"
        DELETED = "deleted", "deleted"
        DELETE_FAILED = "delete_failed", "could not be deleted"

    account = models.CharField(max_length=16, choices=Account.choices, blank=True, default="")
    account_sam = models.CharField(max_length=20, blank=True, help_text="the ephemeral account's sAMAccountName")
    account_dn = models.CharField(max_length=512, blank=True)
    account_sid = models.CharField(max_length=184, blank=True)
    account_secret = models.TextField(blank=True, help_text="the ephemeral account's password, sealed (jitad.vault)")
    account_revealed_at = models.DateTimeField(null=True, blank=True, help_text="when its password was shown, once")
    account_deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "expires_at"]),
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["user", "group_dn"]),
            models.Index(fields=["user", "target", "created_at"]),
            models.Index(fields=["created_at", "id"]),  # the grants view's history, newest first
            models.Index(fields=["claim_token"]),
            # The reports read the grants held in a period (activated before its end, revoked after its start).
            models.Index(fields=["activated_at"]),
            models.Index(fields=["revoked_at"]),
            models.Index(fields=["expires_at"]),  # and the grants that ended in a period
            models.Index(fields=["account", "state"]),  # ephemeral accounts still to delete
            # A group's members that grants back (the group watch and the reconciler, a group at a time): without
            # it each read went through every live grant, a mass expiry's 100,000 for each of its 100 groups.
            models.Index(fields=["group_dn", "state"]),
        ]

    def __str__(self):
        return f"grant #{self.pk} {self.user} on {self.target} [{self.state}]"

    @property
    def ephemeral(self) -> bool:
        """True when the grant is held by an ephemeral account, not the person's own."""
        return bool(self.account)

    @property
    def sids(self) -> list[str]:
        """The SIDs whose sessions and events belong to this grant: the person's, and its ephemeral account's."""
        return [s for s in (self.user_sid, self.account_sid) if s]

    LIVE_STATES = (State.APPROVED, State.GRANTING, State.ACTIVE, State.UNVERIFIED, State.GRANT_FAILED)
    # States in which the membership may exist in AD: the reconciler leaves these alone.
    BACKING_STATES = (State.GRANTING, State.ACTIVE, State.UNVERIFIED, State.GRANT_FAILED, State.REVOKING,
                      State.REVOKE_FAILED)
