"""Targets and policies in the admin: normally written by the policy file, editable by staff."""
from django.contrib import admin

from ..models import Policy, Target


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "tier", "hostname", "group_dn", "enabled")
    list_filter = ("kind", "tier", "enabled")
    search_fields = ("name", "hostname", "group_dn")


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "priority", "approval_mode", "approvals_required", "distinct_approver_groups",
                    "allow_bulk_decisions", "max_duration_minutes", "pending_timeout_minutes", "enabled")
    list_filter = ("approval_mode", "distinct_approver_groups", "allow_bulk_decisions", "enabled")
    search_fields = ("name", "description")
    filter_horizontal = ("targets",)
