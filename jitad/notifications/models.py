"""Every message jitad sends, and one delivery record per recipient or destination URL."""
from django.db import models
from django.utils import timezone

from jitad.engine.models import ClaimedWork

# A destination is named by the environment variable that holds its URLs (``Delivery.destination``;
# services.destinations reads them).
SECURITY = "JITAD_ALERT_URLS"
APPROVALS = "JITAD_APPROVAL_URLS"
NAMED_PREFIX = "JITAD_NOTIFY_"
# The error of a delivery to a destination that holds no URL (selectors read it back).
NOT_SET = "{destination} is not set: no URL to send to"


class Notification(models.Model):
    """One message (what happened, what to do, a link), sent to one or more destinations.

    What went out is in ``deliveries``: one per e-mail recipient and one per URL of each
    apprise destination, each with its own state, attempts and last error.
    """

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    link = models.URLField(max_length=500, blank=True, help_text="the page the reader should open")
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        # Plain indexes: a text column's db_index also made one for LIKE, which nothing asks, written for every row.
        indexes = [models.Index(fields=["object_type", "object_id"]), models.Index(fields=["event"])]

    def __str__(self):
        return f"[{self.severity}] {self.subject}"


class Delivery(ClaimedWork):
    """One notification to one recipient (e-mail) or one destination URL (apprise).

    Claimed work (``jitad.engine.models.ClaimedWork``): a pending delivery is due at
    ``next_attempt_at``; the message that sends it carries its claim token, and the attempt
    takes the claim, marks ``attempt_started_at`` and holds the lease while it sends. A lease
    that lapses with ``attempt_started_at`` set is an attempt that never finished (its
    worker died): the periodic check counts it as a failed attempt. ``attempts`` counts the
    attempts that finished, sent or failed.

    No secret is stored: an apprise delivery names the environment variable its URL comes
    from (``destination``), its position there and a masked form (``address``); the real
    URL is read from the settings when it is sent, and errors are recorded with the URL's
    secret parts masked.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "e-mail"
        APPRISE = "apprise", "apprise"

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    # Written with its notification, by the same code in the same transaction, and deleted with it by Django
    # (CASCADE): no constraint in the database, whose check locked the notification's row for every delivery
    # inserted (a fifth of a notice's database time in a mass expiry).
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries",
                                      db_constraint=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    destination = models.CharField(
        max_length=150, help_text="e-mail: the person's user name; apprise: the variable that holds the URL"
    )
    address = models.CharField(
        max_length=500, blank=True, help_text="e-mail address, or the URL with its secrets masked"
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="which URL of the destination (apprise)")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)  # indexed with next_attempt_at
    attempt_started_at = models.DateTimeField(
        null=True, blank=True, help_text="while an attempt is under way: when it started",
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            # A person's notices still waiting, which a sender joins into one e-mail (services.email_batch).
            # Not partial (WHERE state = 'pending'): pending rows are usually none, so the index's statistics say
            # empty, and in a burst PostgreSQL read all of it for any pending row, even one looked up by key.
            models.Index(fields=["address", "state"], name="notif_delivery_to"),
            models.Index(fields=["claim_token"]),  # a claim's rows: taken, renewed, recorded
        ]

    def __str__(self):
        return f"{self.get_channel_display()} to {self.address or self.destination} [{self.state}]"


class AlertCondition(models.Model):
    """Something wrong that lasts (a DC down, revocations late, a process dead): alerted once, then resolved once.

    ``key`` names the condition (``directory.unreachable``, ``grant.revoke_failed:DirectoryUnavailable``).
    While it is open (``resolved_at`` empty) raising it again only counts ``occurrences``
    and, every JITAD_ALERT_REMIND_MINUTES, reminds; resolving it sends one "Resolved" message.
    So a wave of failures with one cause is one alert, not one per grant or per run.
    """

    key = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Notification.Severity.choices,
                                default=Notification.Severity.CRITICAL)
    subject = models.CharField(max_length=200)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_alert_at = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self):
        return f"{self.key} ({'open' if self.resolved_at is None else 'resolved'})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class DigestEntry(models.Model):
    """A routine security event waiting for its destination's next digest (JITAD_ALERT_DIGEST_MINUTES).

    Routine events (a person enrolling MFA, making backup codes or an API token) are many
    when people are onboarded in bulk, and each is already in the audit trail. They wait
    here and go out as one message per destination and period, counted by kind with the
    people named; ``digest`` is that message once it is recorded. Anything not routine is
    never queued: it is sent at once.
    """

    created_at = models.DateTimeField(default=timezone.now)
    destination = models.CharField(max_length=150, help_text="the variable that holds the URLs, as on a delivery")
    event = models.CharField(max_length=64)
    kind = models.CharField(max_length=100, help_text="what happened, as counted in the digest")
    subject = models.CharField(max_length=200)
    person = models.CharField(max_length=150, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    digest = models.ForeignKey(Notification, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="digested", help_text="the digest that told of it (empty: waiting)")

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "digest entries"
        indexes = [models.Index(fields=["destination", "created_at"], condition=models.Q(digest__isnull=True),
                                name="notif_digest_waiting")]

    def __str__(self):
        return f"{self.subject} ({'waiting' if self.digest_id is None else f'in digest {self.digest_id}'})"
