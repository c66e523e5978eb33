"""Targets and policies in the admin: normally written by the policy file, editable by staff.

An edit here is audited like an apply of the policy file, with the editor as the actor, and
a target's group obeys the policy file's rules: under the JIT OU, a group in AD, not protected
(unless the target is marked nested_into_protected: a tier-0 JIT group, never Domain Admins itself).
"""
from django import forms
from django.contrib import admin

from jitad.audit.services import audit_record

from ..models import Policy, Target
from ..selectors.targets import GroupCheck, target_group_check


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


class TargetAdminForm(forms.ModelForm):
    """A target's form: its group must be one jitad may manage, as the DC answered before the save began."""

    group_check: GroupCheck | None = None  # the DC's answer for this request (TargetAdmin.get_form)

    class Meta:
        model = Target
        fields = "__all__"

    def clean(self):
        data = super().clean()
        dn = data.get("group_dn")
        if not dn or "group_dn" in self.errors:
            return data
        if self.instance.pk and "group_dn" not in self.changed_data and not data.get("enabled"):
            return data  # turning a target off (or editing one that is off) needs no DC
        check = self.group_check
        flag = bool(data.get("nested_into_protected"))
        if check is None or check.dn != dn or check.nested_into_protected != flag:
            self.add_error("group_dn", "The group could not be checked in Active Directory; save again.")
        elif check.unavailable:
            self.add_error("group_dn", f"The group could not be checked in Active Directory ({check.unavailable}). "
                                       "Nothing was saved; try again when a domain controller answers.")
        elif check.problem:
            self.add_error("group_dn", f"jitad cannot use this group: {check.problem}.")
        return data


@admin.register(Target)
class TargetAdmin(AuditedCatalogAdmin):
    kind = "target"
    form = TargetAdminForm
    list_display = ("name", "kind", "tier", "hostname", "group_dn", "winrm_url", "enabled")
    list_filter = ("kind", "tier", "nested_into_protected", "enabled")
    search_fields = ("name", "hostname", "group_dn")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Django handles a POST inside transaction.atomic(), and on SQLite a transaction holds
        # the write lock the sweeper needs: ask the DC here, before it opens, never inside it.
        if request.method == "POST":
            dn = request.POST.get("group_dn", "").strip()  # as the form's CharField will clean it
            # A checkbox is posted only when ticked, as the form's BooleanField will read it.
            flag = forms.CheckboxInput().value_from_datadict(request.POST, {}, "nested_into_protected")
            request.jitad_group_check = target_group_check(group_dn=dn, nested_into_protected=flag) if dn else None
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.group_check = getattr(request, "jitad_group_check", None)
        return form


@admin.register(Policy)
class PolicyAdmin(AuditedCatalogAdmin):
    kind = "policy"
    list_display = ("name", "priority", "approval_mode", "approvals_required", "distinct_approver_groups",
                    "allow_bulk_decisions", "max_duration_minutes", "pending_timeout_minutes", "enabled")
    list_filter = ("approval_mode", "distinct_approver_groups", "allow_bulk_decisions", "enabled")
    search_fields = ("name", "description")
    filter_horizontal = ("targets",)
