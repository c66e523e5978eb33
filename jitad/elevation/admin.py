"""Admin views of the elevation data. Decisions and revocations go through services (issue: approvals UI)."""
from django.contrib import admin

from .models import AccessRequest, Approval, Grant, Policy, Target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "hostname", "group_dn", "enabled")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "hostname", "group_dn")


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "priority", "approval_mode", "approvals_required", "max_duration_minutes", "enabled")
    list_filter = ("approval_mode", "enabled")
    search_fields = ("name", "description")
    filter_horizontal = ("targets",)


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    can_delete = False
    readonly_fields = ("approver", "decision", "comment", "at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AccessRequest)
class AccessRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "requester", "target", "kind", "duration_minutes", "state", "created_at")
    list_filter = ("state", "kind")
    search_fields = ("requester__username", "target__name", "ticket", "justification")
    list_select_related = ("requester", "target")
    inlines = [ApprovalInline]
    readonly_fields = [f.name for f in AccessRequest._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "target", "state", "expires_at", "attempts", "last_error")
    list_filter = ("state", "revoke_reason")
    search_fields = ("user__username", "target__name", "group_dn", "user_dn")
    list_select_related = ("user", "target")
    readonly_fields = [f.name for f in Grant._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
