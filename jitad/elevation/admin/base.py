"""What the approval queue and the grants view share: read-only, scoped to the approver,
and a confirmation page for actions that need a comment or a reason."""
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

from jitad.admin_helpers import ReadOnlyAdmin, span  # noqa: F401  (span: the elevation admin's import)

from ..models import Target
from ..selectors.approvers import is_approver_anywhere
from .filters import ID

BULK_MAX = 100  # a bulk decision or revocation beyond this is a mistake, not a workflow


def is_approver(request) -> bool:
    """True if the logged-in user approves access requests under some policy or target; cached on the request."""
    if not hasattr(request, "_jitad_is_approver"):
        request._jitad_is_approver = is_approver_anywhere(user=request.user)
    return request._jitad_is_approver


class ScopedReadOnlyAdmin(ReadOnlyAdmin):
    """Nobody edits these rows; approvers see their scope, superusers and auditors everything.

    Changes go through services, from actions and buttons the subclasses add.
    """

    # Django's "Show counts" runs a COUNT per filter choice over the whole table: seconds at 100k rows.
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False  # a second COUNT(*) over the whole table, for a number nobody needs

    def response_action(self, request, queryset):
        """Refuse selections that are not ids (Django would answer a crafted one with a 500)."""
        selected = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        if any(not ID.fullmatch(value) for value in selected):
            self.message_user(request, "The selection was not understood; select the rows again.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

    # Search runs through get_search_results: people and targets are looked up first (small
    # tables), then the big table is filtered by id, so no LIKE scans 100k rows.
    search_fields = ("__jitad__",)  # non-empty, so the admin shows the search box
    person_field = ""  # "requester" | "user"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        number = term.lstrip("#")
        if ID.fullmatch(number):
            return queryset.filter(pk=int(number)), False
        people = get_user_model().objects.filter(
            Q(username__icontains=term) | Q(first_name__icontains=term) | Q(last_name__icontains=term)
        ).values("id")
        targets = Target.objects.filter(Q(name__icontains=term) | Q(hostname__icontains=term)).values("id")
        return queryset.filter(self.search_filter(term, people, targets)), False

    def search_filter(self, term: str, people, targets) -> Q:
        return Q(**{f"{self.person_field}__in": people}) | Q(target__in=targets)

    def sees_all(self, request) -> bool:
        """Superusers, and staff granted the view permission on this model (auditors)."""
        user = request.user
        opts = self.model._meta
        return user.is_superuser or (user.is_staff and user.has_perm(f"{opts.app_label}.view_{opts.model_name}"))

    def has_view_permission(self, request, obj=None):
        return self.sees_all(request) or is_approver(request)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    @admin.display(description="target", ordering="target__name")
    def target_name(self, obj):
        return format_html('{} <span class="jitad-tier jitad-tier-{}">T{}</span>', obj.target.name,
                           obj.target.tier, obj.target.tier)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return format_html('<span class="jitad-state jitad-state-{}">{}</span>', obj.state, obj.get_state_display())

    def confirm_page(self, request, template: str, *, title: str, form, objects, action: str = "", form_url: str = "",
                     **extra):
        """The page that asks for a comment or reason before an action (or a button) acts on ``objects``."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "objects": objects,
            "form": form,
            "action": action,
            "form_url": form_url,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
            **extra,
        }
        return TemplateResponse(request, template, context)
