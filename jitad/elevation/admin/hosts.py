"""Standing admins found on servers, and the scans that found them: read-only, for staff and auditors."""
from django.contrib import admin
from django.utils.html import format_html

from jitad.admin_helpers import ReadOnlyAdmin

from ..models import HostScan, StandingAdmin


class OpenFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "Still there"), ("resolved", "Gone"), ("all", "All")]

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {"selected": value == lookup, "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                   "display": title}

    def queryset(self, request, queryset):
        value = self.value() or "open"
        if value == "open":
            return queryset.filter(resolved_at__isnull=True)
        if value == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(StandingAdmin)
class StandingAdminAdmin(ReadOnlyAdmin):
    """Members of local Administrators that no JIT grant explains: the standing privilege to remove."""

    list_display = ("target", "who", "sid", "member_class", "is_group", "orphaned", "first_seen_at", "last_seen_at",
                    "resolved_at")
    list_filter = (OpenFilter, "orphaned", "is_group", "target")
    search_fields = ("name", "sid", "target__name")
    list_select_related = ("target",)
    readonly_fields = [f.name for f in StandingAdmin._meta.fields]

    @admin.display(description="member", ordering="name")
    def who(self, obj):
        if obj.orphaned:
            return format_html('{} <span class="jitad-muted">(orphaned SID: the account is gone)</span>', obj.sid)
        return obj.name or obj.sid


@admin.register(HostScan)
class HostScanAdmin(ReadOnlyAdmin):
    list_display = ("target", "started_at", "ok", "members", "standing", "error")
    list_filter = ("ok", "target")
    list_select_related = ("target",)
    readonly_fields = [f.name for f in HostScan._meta.fields]
