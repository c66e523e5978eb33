"""What went out, to whom, and what failed: read-only, with one action to send failures again."""
from django.contrib import admin, messages
from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils.html import format_html

from .models import AlertCondition, Delivery, DigestEntry, Notification
from .services import deliveries_retry

DeliveryState = Delivery.State
_DELIVERY_FIELDS = (
    "channel", "destination", "address", "state", "attempts", "next_attempt_at", "sent_at", "last_error",
)


class _ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeliveryInline(_ReadOnly, admin.TabularInline):
    model = Delivery
    fields = _DELIVERY_FIELDS
    readonly_fields = _DELIVERY_FIELDS
    extra = 0
    can_delete = False


@admin.register(Notification)
class NotificationAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("created_at", "severity", "event", "subject", "outcome")
    list_filter = ("severity", "event", "deliveries__state", "deliveries__channel")
    search_fields = ("subject", "body", "object_id", "deliveries__destination", "deliveries__address")
    readonly_fields = ("created_at", "event", "severity", "subject", "body", "link", "object_type", "object_id")
    date_hierarchy = "created_at"
    inlines = [DeliveryInline]

    def get_queryset(self, request):
        # distinct: a filter on deliveries joins them a second time, which would multiply plain counts
        return super().get_queryset(request).annotate(
            n_sent=Count("deliveries", filter=Q(deliveries__state=DeliveryState.SENT), distinct=True),
            n_failed=Count("deliveries", filter=Q(deliveries__state=DeliveryState.FAILED), distinct=True),
            n_pending=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING), distinct=True),
        )

    @admin.display(description="deliveries")
    def outcome(self, obj):
        counts = ((obj.n_sent, "sent"), (obj.n_failed, "failed"), (obj.n_pending, "pending"))
        parts = [f"{n} {label}" for n, label in counts if n]
        return ", ".join(parts) or "none"


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("id", "sent_or_due", "message", "channel", "destination", "address", "state", "attempts", "error")
    list_filter = ("state", "channel")
    search_fields = ("destination", "address", "notification__subject", "last_error")
    list_select_related = ("notification",)
    readonly_fields = ("notification", "position", *_DELIVERY_FIELDS)
    fields = readonly_fields
    actions = ["send_again"]

    @admin.display(description="sent / due")
    def sent_or_due(self, obj):
        return obj.sent_at or obj.next_attempt_at

    @admin.display(description="notification")
    def message(self, obj):
        url = reverse("admin:notifications_notification_change", args=[obj.notification_id])
        return format_html('<a href="{}">{}</a>', url, obj.notification.subject)

    @admin.display(description="last error")
    def error(self, obj):
        return obj.last_error[:120]

    def has_resend_permission(self, request):
        return request.user.has_perm("notifications.change_delivery")

    @admin.action(description="Send the selected failed deliveries again", permissions=["resend"])
    def send_again(self, request, queryset):
        count = deliveries_retry(delivery_ids=list(queryset.filter(state=DeliveryState.FAILED).values_list("id", flat=True)))
        self.message_user(request, f"{count} failed delivery(ies) queued again.", messages.SUCCESS)


@admin.register(AlertCondition)
class AlertConditionAdmin(_ReadOnly, admin.ModelAdmin):
    """Conditions the watchdog and the engine alert on: open ones first."""

    list_display = ("key", "severity", "subject", "opened_at", "resolved_at", "occurrences", "last_alert_at")
    list_filter = ("severity", "event", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("key", "subject")
    ordering = (F("resolved_at").desc(nulls_first=True), "-opened_at")
    readonly_fields = ("key", "event", "severity", "subject", "opened_at", "resolved_at", "last_alert_at", "occurrences")


@admin.register(DigestEntry)
class DigestEntryAdmin(_ReadOnly, admin.ModelAdmin):
    """Routine security events: waiting for the next digest (JITAD_ALERT_DIGEST_MINUTES), or in the one that told of them."""

    list_display = ("created_at", "kind", "person", "destination", "told")
    list_filter = ("kind", "destination", ("digest", admin.EmptyFieldListFilter))
    search_fields = ("person", "subject", "object_id")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "destination", "event", "kind", "subject", "person", "object_type", "object_id",
                       "digest")

    @admin.display(description="digest")
    def told(self, obj):
        if obj.digest_id is None:
            return "waiting"
        url = reverse("admin:notifications_notification_change", args=[obj.digest_id])
        return format_html('<a href="{}">digest {}</a>', url, obj.digest_id)
