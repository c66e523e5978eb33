"""Deputies in the admin: superusers and staff with the view permission see every delegation; only a
superuser makes one for someone else (audited with their name) or ends one early. Everything goes
through the delegation services, so the rules and the audit are the portal's."""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.http import HttpResponseRedirect
from django.urls import reverse

from jitad.accounts.mfa import mfa_step_of

from ..errors import RequestRefused
from ..models import Delegation
from ..selectors.delegations import delegation_state
from ..services.delegations import REASON_MAX, delegation_create, delegation_revoke


class DelegationAddForm(forms.ModelForm):
    """The fields a superuser fills in; the service checks the rules, so the model's own validation is skipped."""

    starts_at = forms.SplitDateTimeField(required=False, widget=AdminSplitDateTime, help_text="Empty: from now.")
    ends_at = forms.SplitDateTimeField(widget=AdminSplitDateTime)
    reason = forms.CharField(required=False, max_length=REASON_MAX, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = Delegation
        fields = ["delegator", "deputy", "starts_at", "ends_at", "reason"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        active = get_user_model().objects.filter(is_active=True).order_by("username")
        for name in ("delegator", "deputy"):
            if name in self.fields:
                self.fields[name].queryset = active

    def _post_clean(self):  # the service is the authority (and runs with the person acting)
        pass


@admin.register(Delegation)
class DelegationAdmin(admin.ModelAdmin):
    list_display = ("id", "delegator", "deputy", "starts_at", "ends_at", "state", "created_by", "revoked_by")
    list_select_related = ("delegator", "deputy")
    search_fields = ("delegator__username", "deputy__username")
    list_filter = ("revoked_at",)
    actions = ["end_now"]
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = ("delegator", "deputy", "starts_at", "ends_at", "reason", "created_at", "created_by",
                       "revoked_at", "revoked_by", "mfa_method", "mfa_verified_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = DelegationAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request, obj=None):
        return DelegationAddForm.Meta.fields if obj is None else self.readonly_fields

    # Nobody but superusers and staff allowed to view delegations sees anybody's delegations here.
    def has_view_permission(self, request, obj=None):
        user = request.user
        return user.is_active and (user.is_superuser or (user.is_staff and user.has_perm("elevation.view_delegation")))

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # ended early or run out, a delegation stays as the record of who could decide

    def has_revoke_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    @admin.display(description="state")
    def state(self, obj):
        return delegation_state(obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            d = delegation_create(delegator=data["delegator"], deputy=data["deputy"], starts_at=data.get("starts_at"),
                                  ends_at=data["ends_at"], reason=data.get("reason") or "", actor=request.user,
                                  mfa=mfa_step_of(request))
        except RequestRefused as e:
            self.message_user(request, e.message, messages.ERROR)
            return
        obj.pk = d.pk
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:  # refused by the service: nothing was saved, the message says why
            return HttpResponseRedirect(reverse("admin:elevation_delegation_add"))
        return HttpResponseRedirect(reverse("admin:elevation_delegation_changelist"))

    def log_addition(self, request, obj, message):
        return None if obj.pk is None else super().log_addition(request, obj, message)

    @admin.action(description="End the selected delegations now", permissions=["revoke"])
    def end_now(self, request, queryset):
        for d in queryset.select_related("delegator", "deputy")[:100]:
            try:
                delegation_revoke(delegation=d, actor=request.user, reason="ended in the admin",
                                  mfa=mfa_step_of(request))
                self.message_user(request, f"Delegation #{d.pk} ({d.delegator} → {d.deputy}) has ended.")
            except RequestRefused as e:
                self.message_user(request, f"Delegation #{d.pk}: {e.message}", messages.WARNING)
