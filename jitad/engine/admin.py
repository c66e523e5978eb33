"""The engine's processes and leases, read-only: who is alive, who leads, who watches."""
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.utils import timezone

from .models import Heartbeat, Lease


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Heartbeat)
class HeartbeatAdmin(_ReadOnly):
    list_display = ("node", "role", "status", "hostname", "pid", "queues", "started_at", "seen_at", "stopped_at")
    list_filter = ("role",)
    search_fields = ("node", "hostname")
    ordering = ("role", "node")

    @admin.display(description="status")
    def status(self, obj):
        if obj.stopped_at:
            return "stopped"
        silent = timezone.now() - obj.seen_at
        return "alive" if silent <= timedelta(seconds=settings.JITAD_PROCESS_SILENT_SECONDS) else "dead (silent)"


@admin.register(Lease)
class LeaseAdmin(_ReadOnly):
    list_display = ("name", "holder", "acquired_at", "expires_at", "held")

    @admin.display(boolean=True)
    def held(self, obj):
        return bool(obj.expires_at and obj.expires_at >= timezone.now())
