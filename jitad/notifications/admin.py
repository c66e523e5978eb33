"""What went out, and what did not."""
from django.contrib import admin

from .models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "severity", "event", "subject", "state", "attempts", "sent_at")
    list_filter = ("state", "severity", "event")
    search_fields = ("subject", "body", "object_id")
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
