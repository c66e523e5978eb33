"""Sealed break-glass accounts, their seals, checkouts under dual control, runbook ticks, reviews."""
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from jitad.engine.models import ClaimedWork

# sAMAccountName: at most 20 characters, none of "/\[]:;|=,+*?<>@ and no control characters.
ACCOUNT_NAME_PATTERN = r'^[^"/\\\[\]:;|=,+*?<>@\s\x00-\x1f]{1,20}\Z'


class SealedAccount(ClaimedWork):
    """An AD account only jitad knows the password of, checked out under dual control.

    ``secret`` holds the current password, encrypted with the vault key (Fernet, bound to
    this row) and never in plaintext; ``pending_secret`` the one a rotation is setting,
    until AD confirms it. States:

    * ``enrolling``: jitad has not yet set a password of its own (whoever created the
      account may know the old one);
    * ``sealed``: the password is jitad's alone, verified; the account disabled if
      ``disable_when_sealed``; ``seal_id`` names this seal (printed on an envelope);
    * ``checked_out``: a checkout holds it (pending approval, opening or open);
    * ``rotating``: a check-in (or a broken seal) asked for a new password;
    * ``exposed``: a rotation failed: someone may still know a live password. It is
      retried with backoff, alerted, and shown until a rotation succeeds.

    Rotation and enabling are *claimed* like grants: ``claim_token`` names the one task
    allowed to act, ``lease_until`` when that claim lapses if the task vanished.
    """

    class State(models.TextChoices):
        ENROLLING = "enrolling"
        SEALED = "sealed"
        CHECKED_OUT = "checked_out", "checked out"
        ROTATING = "rotating"
        EXPOSED = "exposed"

    name = models.CharField("sAMAccountName", max_length=20, unique=True)
    description = models.TextField(blank=True)
    user_dn = models.CharField(max_length=512, blank=True)
    user_guid = models.CharField(max_length=36, blank=True)
    user_sid = models.CharField(max_length=184, blank=True)
    disable_when_sealed = models.BooleanField(
        default=True,
        help_text="disabled in AD while sealed, enabled for a checkout. Leave off for accounts kept in paper "
                  "envelopes: with the portal or the DCs down nobody could enable them.",
    )
    emergency_allowed = models.BooleanField(
        default=True, help_text="a responder may check it out alone, alerting every approver and the security channel"
    )
    approvals_required = models.PositiveSmallIntegerField(default=2, help_text="distinct approvers, never the requester")
    responder_groups = models.JSONField(default=list, blank=True, help_text="AD group names who may check it out")
    approver_groups = models.JSONField(default=list, blank=True, help_text="AD group names who approve checkouts")
    max_checkout_minutes = models.PositiveIntegerField(default=240)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ENROLLING, db_index=True)
    secret = models.TextField(blank=True, editable=False)
    pending_secret = models.TextField(blank=True, editable=False)
    seal_id = models.CharField(max_length=32, blank=True, editable=False)
    sealed_at = models.DateTimeField(null=True, blank=True)
    pwd_last_set = models.BigIntegerField(null=True, blank=True, help_text="AD's pwdLastSet when jitad sealed it")
    exposed_since = models.DateTimeField(null=True, blank=True)
    rotation_reason = models.CharField(max_length=200, blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)
    enrolled_by = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "sealed account"
        constraints = [models.UniqueConstraint(fields=["user_guid"], condition=~Q(user_guid=""),
                                               name="one_sealed_account_per_ad_object")]

    def __str__(self):
        return self.name

    def clean(self):
        if not re.match(ACCOUNT_NAME_PATTERN, self.name or ""):
            raise ValidationError({"name": "an AD sAMAccountName: 1 to 20 characters, none of \"/\\[]:;|=,+*?<>@"})
        for field in ("responder_groups", "approver_groups"):
            value = getattr(self, field)
            if value is None:
                setattr(self, field, [])
            elif not isinstance(value, list) or any(not isinstance(v, str) or not v.strip() for v in value):
                raise ValidationError({field: "a list of AD group names"})
        if not 1 <= self.approvals_required <= 10:
            raise ValidationError({"approvals_required": "between 1 and 10 approvers"})
        if not 5 <= self.max_checkout_minutes <= 7 * 24 * 60:
            raise ValidationError({"max_checkout_minutes": "between 5 minutes and 7 days"})

    @property
    def vault_ref(self) -> str:
        """What the encrypted secret is bound to: a token copied to another row will not open."""
        return f"sealed-account:{self.pk}"


class Seal(models.Model):
    """One password generation of a sealed account. A new seal is made each time jitad sets
    the password; the previous one is broken then. An envelope carries its seal id."""

    class Reason(models.TextChoices):
        ENROLLED = "enrolled"
        CHECKED_IN = "checked_in", "checked in"
        ENVELOPE_OPENED = "envelope_opened", "envelope opened"
        SEAL_BROKEN = "seal_broken", "changed outside jitad"
        MANUAL = "manual", "rotated by an operator"

    account = models.ForeignKey(SealedAccount, on_delete=models.CASCADE, related_name="seals")
    seal_id = models.CharField(max_length=32, unique=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created_at = models.DateTimeField(default=timezone.now)
    broken_at = models.DateTimeField(null=True, blank=True)
    broken_reason = models.CharField(max_length=200, blank=True)
    envelope_printed_at = models.DateTimeField(null=True, blank=True)
    envelope_printed_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.seal_id} ({self.account})"


class Checkout(ClaimedWork):
    """One person's use of a sealed account: asked for, approved (or emergency), open, returned.

    ``purpose`` ``use`` is the normal checkout: the holder sees the password once, the
    account is enabled for the window, and check-in rotates the password. ``envelope``
    produces the printable sealed-envelope sheet of the current password (dual approval,
    printed once), and closes without rotating: the envelope must keep working.

    Exclusive: at most one live checkout (pending, opening, open or returning) per account,
    enforced by a partial unique constraint as well as by the services.
    """

    class Purpose(models.TextChoices):
        USE = "use", "use the account"
        ENVELOPE = "envelope", "print a sealed envelope"

    class Mode(models.TextChoices):
        DUAL = "dual", "dual control"
        EMERGENCY = "emergency"

    class State(models.TextChoices):
        PENDING = "pending"
        OPENING = "opening", "approved, enabling the account"
        OPEN = "open"
        RETURNING = "returning", "checked in, rotating"
        CLOSED = "closed"
        DENIED = "denied"
        CANCELLED = "cancelled"
        EXPIRED = "expired", "not approved in time"

    class CheckinKind(models.TextChoices):
        HOLDER = "holder", "by the holder"
        FORCED = "forced", "forced by an administrator"
        AUTO = "auto", "at the end of the window"
        PRINTED = "printed", "envelope printed"

    LIVE_STATES = (State.PENDING, State.OPENING, State.OPEN, State.RETURNING)

    account = models.ForeignKey(SealedAccount, on_delete=models.PROTECT, related_name="checkouts")
    holder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="breakglass_checkouts")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.USE)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.DUAL)
    incident_ref = models.CharField("incident", max_length=64)
    reason = models.TextField()
    runbook_slug = models.CharField(max_length=64, blank=True)
    runbook_title = models.CharField(max_length=200, blank=True)
    runbook_digest = models.CharField(max_length=64, blank=True)
    duration_minutes = models.PositiveIntegerField()
    approvals_required = models.PositiveSmallIntegerField(default=2)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    seal_id = models.CharField(max_length=32, blank=True, help_text="the seal this checkout breaks")
    requested_at = models.DateTimeField(default=timezone.now, db_index=True)
    pending_until = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revealed_at = models.DateTimeField(null=True, blank=True)
    checkin_at = models.DateTimeField(null=True, blank=True)
    checkin_kind = models.CharField(max_length=16, choices=CheckinKind.choices, blank=True)
    checkin_by = models.CharField(max_length=150, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # The verified MFA step the checkout was asked with ("" / None: none recorded).
    mfa_method = models.CharField(max_length=16, blank=True, default="")
    mfa_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(state__in=["pending", "opening", "open", "returning"]),
                name="one_live_checkout_per_account",
            )
        ]
        indexes = [models.Index(fields=["state", "expires_at"]), models.Index(fields=["state", "pending_until"])]

    def __str__(self):
        return f"checkout #{self.pk} of {self.account} by {self.holder}"

    @property
    def is_live(self) -> bool:
        return self.state in self.LIVE_STATES


class CheckoutApproval(models.Model):
    """One approver's decision on a checkout; one per person."""

    class Decision(models.TextChoices):
        APPROVE = "approve"
        DENY = "deny"

    checkout = models.ForeignKey(Checkout, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                 related_name="breakglass_decisions")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)
    mfa_method = models.CharField(max_length=16, blank=True, default="")  # the decision's verified MFA step
    mfa_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["checkout", "approver"], name="one_decision_per_checkout_approver")]


class RunbookTick(models.Model):
    """Where the holder stands on one runbook step (the audit trail keeps every tick and untick)."""

    checkout = models.ForeignKey(Checkout, on_delete=models.CASCADE, related_name="ticks")
    step_id = models.CharField(max_length=32)
    step_number = models.PositiveIntegerField()
    step_text = models.CharField(max_length=500)
    done = models.BooleanField(default=True)
    by = models.CharField(max_length=150)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["step_number"]
        constraints = [models.UniqueConstraint(fields=["checkout", "step_id"], name="one_tick_per_step")]


class Review(models.Model):
    """The post-incident review of a checkout: filed by the holder, closed by an approver.

    Mandatory after an emergency checkout: it cannot be closed before it is filed.
    Otherwise an approver may close it without one (waived).
    """

    class State(models.TextChoices):
        AWAITING = "awaiting", "waiting for the holder"
        FILED = "filed", "filed, waiting for an approver"
        CLOSED = "closed"

    class Needed(models.TextChoices):
        YES = "yes", "yes"
        PARTLY = "partly", "partly: less access would have done"
        NO = "no", "no: the normal path would have done"

    checkout = models.OneToOneField(Checkout, on_delete=models.CASCADE, related_name="review")
    mandatory = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.AWAITING, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    what_was_done = models.TextField(blank=True)
    was_needed = models.CharField(max_length=8, choices=Needed.choices, blank=True)
    follow_up = models.TextField(blank=True)
    filed_by = models.CharField(max_length=150, blank=True)
    filed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=150, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"review of checkout #{self.checkout_id}"
