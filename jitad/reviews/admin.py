"""The reviews in the admin: campaigns, their items, and the exclusions removals left behind.

Read-only for everyone (auditors: staff with the view permission); rows change only
through the services. Lifting an exclusion, which gives the eligibility back, is an action
for superusers and staff allowed to change exclusions; like every admin POST it needs a
fresh MFA step (jitad.accounts.middleware), and it is audited.
"""
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html

from jitad.admin_helpers import ReadOnlyAdmin
from jitad.elevation.models import EligibilityExclusion
from jitad.elevation.services.exclusions import eligibility_exclusion_lift

from .models import ReviewCampaign, ReviewItem


class _AuditorsSee(ReadOnlyAdmin):
    """Superusers, and staff granted the view permission on the model (auditors)."""

    show_facets = admin.ShowFacets.NEVER

    def has_view_permission(self, request, obj=None):
        user = request.user
        opts = self.model._meta
        return user.is_superuser or (user.is_staff and user.has_perm(f"{opts.app_label}.view_{opts.model_name}"))

    def has_module_permission(self, request):
        return self.has_view_permission(request)


class ReviewItemInline(admin.TabularInline):
    model = ReviewItem
    fields = ("username", "user", "via", "decision", "by_default", "decided_by", "decided_at", "comment", "applied_at",
              "outcome")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReviewCampaign)
class ReviewCampaignAdmin(_AuditorsSee):
    list_display = ("id", "policy", "state", "opened_at", "deadline", "closed_at", "outcome")
    list_filter = ("state", "policy")
    list_select_related = ("policy",)
    search_fields = ("policy__name",)
    readonly_fields = [f.name for f in ReviewCampaign._meta.fields]
    inlines = [ReviewItemInline]
    date_hierarchy = "opened_at"

    def get_queryset(self, request):
        # The outcome column's counts in the list's own query, not one more query per row.
        def n(**kw):
            return Count("items", filter=Q(**{f"items__{k}": v for k, v in kw.items()}))

        return super().get_queryset(request).annotate(
            n_kept=n(decision=ReviewItem.Decision.KEEP), n_removed=n(decision=ReviewItem.Decision.REMOVE),
            n_removed_default=n(decision=ReviewItem.Decision.REMOVE, by_default=True),
            n_undecided=n(decision=ReviewItem.Decision.UNDECIDED))

    @admin.display(description="items")
    def outcome(self, obj):
        link = reverse("admin:reviews_reviewitem_changelist") + f"?campaign__id__exact={obj.pk}"
        return format_html('<a href="{}">{} kept, {} removed ({} by default), {} undecided</a>', link,
                           obj.n_kept, obj.n_removed, obj.n_removed_default, obj.n_undecided)


@admin.register(ReviewItem)
class ReviewItemAdmin(_AuditorsSee):
    list_display = ("id", "campaign", "username", "decision", "by_default", "decided_by", "decided_at", "applied_at")
    list_filter = ("decision", "by_default", "campaign__policy")
    list_select_related = ("campaign__policy", "decided_by")
    search_fields = ("username",)
    readonly_fields = [f.name for f in ReviewItem._meta.fields]


@admin.register(EligibilityExclusion)
class EligibilityExclusionAdmin(_AuditorsSee):
    list_display = ("id", "policy", "user", "source", "source_id", "created_by", "created_at", "lifted_at", "lifted_by")
    list_filter = ("policy", ("lifted_at", admin.EmptyFieldListFilter))
    list_select_related = ("policy", "user")
    search_fields = ("user__username", "policy__name")
    readonly_fields = [f.name for f in EligibilityExclusion._meta.fields]
    actions = ["lift_selected"]

    def has_lift_permission(self, request):
        user = request.user
        return user.is_superuser or (user.is_staff and user.has_perm("elevation.change_eligibilityexclusion"))

    @admin.action(description="Lift: give the selected people their eligibility back", permissions=["lift"])
    def lift_selected(self, request, queryset):
        lifted = [e for e in queryset[:1001] if eligibility_exclusion_lift(
            exclusion=e, actor=request.user, reason="lifted in the admin")]
        if lifted:
            self.message_user(request, f"Lifted {len(lifted)}: " + ", ".join(
                f"{e.user} under {e.policy}" for e in lifted), messages.SUCCESS)
        else:
            self.message_user(request, "Nothing lifted: the selected exclusions were already lifted.", messages.WARNING)
