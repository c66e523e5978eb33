"""Users in the admin: AD-linked people's groups are AD's to change, and every change of
who may do what (groups, active, staff, superuser) goes into the audit trail."""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from jitad.audit.services import audit_record

User = get_user_model()
WATCHED = ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")


def _snapshot(user) -> dict:
    if user.pk is None:
        return {}
    return {
        "is_active": user.is_active, "is_staff": user.is_staff, "is_superuser": user.is_superuser,
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "user_permissions": sorted(user.user_permissions.values_list("codename", flat=True)),
    }


admin.site.unregister(User)


@admin.register(User)
class JitadUserAdmin(UserAdmin):
    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and hasattr(obj, "directory_account"):
            # Approver and eligibility rights follow AD groups; the directory sync would undo an edit anyway.
            fields.append("groups")
        return fields

    def save_model(self, request, obj, form, change):
        request._jitad_user_before = _snapshot(User.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        user = form.instance
        before, after = getattr(request, "_jitad_user_before", {}), _snapshot(user)
        changed = {k: {"before": before.get(k), "after": after[k]} for k in WATCHED if before.get(k) != after[k]}
        if changed or not change:
            audit_record(actor=request.user.get_username(), action="account.changed" if change else "account.created",
                         object_type="user", object_id=user.pk, reason="via the admin", data=changed)
