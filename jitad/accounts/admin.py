"""Users in the admin: AD-linked people's groups are AD's to change, and every change of
who may do what (groups, active, staff, superuser) goes into the audit trail. MFA devices:
listed and deleted, never shown with their secrets."""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.template.response import TemplateResponse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from jitad.admin_helpers import ReadOnlyAdmin
from jitad.audit.services import audit_record

from .devices import AuthenticatorDevice, BackupCodeDevice
from .enrolment import EnrolmentCodeRefused, enrolment_code_issue
from .mfa import no_store
from .models import AutomationIdentity, EnrolmentCode

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
    actions = ["issue_enrolment_codes"]

    @admin.action(description="Issue enrolment codes (shown once)", permissions=["change"])
    def issue_enrolment_codes(self, request, queryset):
        """A one-time enrolment code per selected person, shown in this answer only (docs/mfa.md)."""
        issued, refused = [], []
        for user in queryset.order_by("username"):
            try:
                code, raw = enrolment_code_issue(user=user, actor=request.user.get_username())
            except EnrolmentCodeRefused as e:
                refused.append(str(e))
                continue
            issued.append({"user": user.get_username(), "code": raw, "expires_at": code.expires_at})
        context = {**self.admin_site.each_context(request), "title": "Enrolment codes", "opts": self.model._meta,
                   "issued": issued, "refused": refused}
        return no_store(TemplateResponse(request, "admin/accounts/enrolment_codes.html", context))

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


# --- MFA devices: seen and deleted (a lost phone), never added or edited here -------------------
# Enrolment happens in the portal, where the key is shown once to its owner. django-otp's own
# device admins would show and accept plaintext keys and codes: they are not offered.
for _model in (TOTPDevice, StaticDevice):
    try:
        admin.site.unregister(_model)
    except admin.sites.NotRegistered:
        pass


class _DeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "name"]
    list_select_related = ["user"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        _audit_device_removal(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            _audit_device_removal(request, obj)
        super().delete_queryset(request, queryset)


def _audit_device_removal(request, device):
    audit_record(actor=request.user.get_username(), action="mfa.removed", object_type="otp_device",
                 object_id=device.persistent_id, before="confirmed" if device.confirmed else "unconfirmed", after="removed",
                 reason="via the admin", data={"kind": type(device).__name__, "user": device.user.get_username()})


@admin.register(AuthenticatorDevice)
class AuthenticatorDeviceAdmin(_DeviceAdmin):
    pass


@admin.register(BackupCodeDevice)
class BackupCodeDeviceAdmin(_DeviceAdmin):
    list_display = [*_DeviceAdmin.list_display, "codes_left"]

    @admin.display(description="codes left")
    def codes_left(self, obj):
        return obj.code_set.count()


@admin.register(EnrolmentCode)
class EnrolmentCodeAdmin(ReadOnlyAdmin):
    """Who holds a code and in what state; never the code (it is in no table). Issued from the Users list."""

    list_display = ["user", "issued_at", "issued_by", "expires_at", "used_at", "failed_attempts", "voided_at", "void_reason"]
    list_select_related = ["user"]
    search_fields = ["user__username", "issued_by"]
    fields = readonly_fields = list_display


@admin.register(AutomationIdentity)
class AutomationIdentityAdmin(ReadOnlyAdmin):
    """Automation identities and their rights, to see; made and changed with manage.py jitad_automation (audited)."""

    list_display = ["user", "scopes", "targets", "description", "created_by", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "description"]
    fields = readonly_fields = ["user", "scopes", "targets", "public_key", "description", "created_by", "created_at"]
