"""Targets and policies in the admin: normally written by the policy file, editable by staff.

An edit here is audited like an apply of the policy file, with the editor as the actor.
"""
from django.contrib import admin

from jitad.audit.services import audit_record

from ..models import Policy, Target


class AuditedCatalogAdmin(admin.ModelAdmin):
    """Records who changed which fields of a target or policy, and deletions."""

    kind = ""  # "target" | "policy", as the policy file's audit events name them

    def _audit(self, request, obj, verb: str, changed: list[str]) -> None:
        action = f"policy.target_{verb}" if self.kind == "target" else f"policy.{verb}"
        audit_record(actor=request.user.get_username(), action=action, object_type=self.kind, object_id=str(obj.pk),
                     after="enabled" if obj.enabled else "disabled", reason="via the admin",
                     data={"name": obj.name, "changed": changed})

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        self._audit(request, form.instance, "updated" if change else "created", list(form.changed_data))

    def delete_model(self, request, obj):
        self._audit(request, obj, "deleted", [])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._audit(request, obj, "deleted", [])
        super().delete_queryset(request, queryset)


@admin.register(Target)
class TargetAdmin(AuditedCatalogAdmin):
    kind = "target"
    list_display = ("name", "kind", "tier", "hostname", "group_dn", "winrm_url", "enabled")
    list_filter = ("kind", "tier", "enabled")
    search_fields = ("name", "hostname", "group_dn")


@admin.register(Policy)
class PolicyAdmin(AuditedCatalogAdmin):
    kind = "policy"
    list_display = ("name", "priority", "approval_mode", "approvals_required", "distinct_approver_groups",
                    "allow_bulk_decisions", "max_duration_minutes", "pending_timeout_minutes", "enabled")
    list_filter = ("approval_mode", "distinct_approver_groups", "allow_bulk_decisions", "enabled")
    search_fields = ("name", "description")
    filter_horizontal = ("targets",)
