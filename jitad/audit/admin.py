"""Read-only audit trail in the admin."""
from django.contrib import admin

from jitad.admin_helpers import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "action", "object_type", "object_id", "before", "after")
    list_filter = ("action", "object_type")
    search_fields = ("actor", "object_id", "reason")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

