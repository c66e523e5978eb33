"""Every message jitad sends, and one delivery record per recipient or destination URL."""
from django.db import models
from django.utils import timezone


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
    event = models.CharField(max_length=64, db_index=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    link = models.URLField(max_length=500, blank=True, help_text="the page the reader should open")
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"[{self.severity}] {self.subject}"


class Delivery(models.Model):
    """One notification to one recipient (e-mail) or one destination URL (apprise).

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

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    destination = models.CharField(
        max_length=150, help_text="e-mail: the person's user name; apprise: the variable that holds the URL"
    )
    address = models.CharField(
        max_length=500, blank=True, help_text="e-mail address, or the URL with its secrets masked"
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="which URL of the destination (apprise)")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True,
        help_text="when a pending delivery is due (while it is being sent: when that attempt lapses)",
    )
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self):
        return f"{self.get_channel_display()} to {self.address or self.destination} [{self.state}]"
