"""Removals the reconciler held for an operator: superusers confirm or discard them here.

Every POST in the admin asks for a fresh OTP first (jitad.accounts.middleware), so a
confirmation is as strong as an admin revoke. Rows are never edited or deleted.
"""
from django.contrib import admin, messages

from jitad.admin_helpers import ReadOnlyAdmin

from ..models import HeldRemoval
from ..services import held_removals_confirm, held_removals_discard


@admin.register(HeldRemoval)
class HeldRemovalAdmin(ReadOnlyAdmin):
    list_display = ("id", "state", "group_dn", "member_dn", "held_at", "decided_by", "decided_at", "outcome", "last_error")
    list_filter = ("state",)
    search_fields = ("group_dn", "member_dn")
    readonly_fields = [f.name for f in HeldRemoval._meta.fields]
    actions = ["confirm_selected", "discard_selected"]
    ordering = ("-held_at", "id")

    def has_view_permission(self, request, obj=None):
        user = request.user
        return user.is_superuser or (user.is_staff and user.has_perm("elevation.view_heldremoval"))

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_decide_permission(self, request):
        return request.user.is_superuser

    def _report(self, request, verb: str, result) -> None:
        if result.changed:
            self.message_user(request, f"{verb} {len(result.changed)}: " + " ".join(f"#{h.pk}" for h in result.changed),
                              messages.SUCCESS)
        for pk, why in result.refused:
            self.message_user(request, f"#{pk} not {verb.lower()}: {why}", messages.ERROR)

    @admin.action(description="Confirm: remove the selected members from their group", permissions=["decide"])
    def confirm_selected(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True)[:1001])
        result = held_removals_confirm(ids=ids, actor=request.user.get_username(), reason="confirmed in the admin")
        self._report(request, "Confirmed", result)

    @admin.action(description="Discard: leave the selected members in their group", permissions=["decide"])
    def discard_selected(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True)[:1001])
        result = held_removals_discard(ids=ids, actor=request.user.get_username(), reason="discarded in the admin")
        self._report(request, "Discarded", result)
