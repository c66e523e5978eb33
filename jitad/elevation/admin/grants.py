"""Grants in the admin: everything live now, failures first, then soonest to expire; admin revoke; a grant's
timeline and evidence downloads.

Approvers see the grants of requests in their scope; superusers and staff with the view
permission see all. Revoking calls ``grant_revoke``, which checks who may and records why.
"""
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Case, Exists, IntegerField, OuterRef, Value, When
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from ..errors import RequestRefused
from ..exports import evidence_response, evidence_timeline
from ..models import AccessRequest, Grant
from ..selectors.approvers import approver_scope, can_revoke
from ..selectors.timeline import grant_timeline
from ..services import grant_revoke
from .base import BULK_MAX, ScopedReadOnlyAdmin, span
from .filters import GrantViewFilter
from .forms import RevokeForm

REVOCABLE = (Grant.State.SCHEDULED, Grant.State.APPROVED, Grant.State.GRANTING, Grant.State.ACTIVE, Grant.State.UNVERIFIED,
             Grant.State.GRANT_FAILED)


@admin.register(Grant)
class GrantAdmin(ScopedReadOnlyAdmin):
    list_display = ("ident", "user", "target_name", "state_badge", "on_server", "ends", "starts_at", "expires_at",
                    "attempts", "error")
    list_display_links = ("ident",)
    list_filter = (GrantViewFilter, "state", "target__tier", "revoke_reason", "account")
    person_field = "user"
    search_help_text = "Search by grant number, holder (name) or target (name or host)."
    list_select_related = ("user", "target")
    list_per_page = 100
    actions = ["revoke_selected"]
    # The ephemeral account's sealed password is never shown, not even sealed: only its holder sees it, once.
    exclude = ["account_secret"]
    readonly_fields = [f.name for f in Grant._meta.fields if f.name != "account_secret"]
    change_form_template = "admin/elevation/grant/change_form.html"

    class Media:
        css = {"all": ["jitad/admin.css"]}

    def get_queryset(self, request):
        qs = Grant.objects.annotate(
            urgency=Case(
                When(state__in=GrantViewFilter.FAILED, then=Value(0)),
                When(state__in=GrantViewFilter.NOW, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        ).order_by(*self.get_ordering(request))
        if self.sees_all(request):
            return qs
        # EXISTS on the request rather than a join: the database walks grants in order and stops at a page.
        in_scope = AccessRequest.objects.filter(approver_scope(user=request.user, resolved=True), pk=OuterRef("request_id"))
        return qs.filter(Exists(in_scope))

    def get_ordering(self, request):
        if request.GET.get(GrantViewFilter.parameter_name, GrantViewFilter.default) in ("now", "failed"):
            return ("urgency", "expires_at", "id")
        return ("-created_at", "-id")

    # -- columns -------------------------------------------------------------------------
    @admin.display(description="#", ordering="id")
    def ident(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="ends in", ordering="expires_at")
    def ends(self, obj):
        if obj.state == Grant.State.REVOKED:
            return format_html('<span class="jitad-muted">{}</span>', obj.get_revoke_reason_display() or "ended")
        left = (obj.expires_at - timezone.now()).total_seconds()
        if obj.revoke_requested_at:
            return "being revoked"
        if obj.state == Grant.State.SCHEDULED:  # nothing in AD yet
            ahead = (obj.starts_at - timezone.now()).total_seconds() if obj.starts_at else 0
            return f"starts in {span(ahead)}" if ahead > 0 else "waiting for the target"
        return span(left) if left > 0 else "overdue"

    @admin.display(description="on the server")
    def on_server(self, obj):
        """What WinRM showed: the right verified while live, confirmed gone after revocation."""
        if not obj.target.winrm_url:
            return format_html('<span class="jitad-muted">{}</span>', "not checked")
        if obj.state == Grant.State.REVOKED:
            label = obj.get_host_revoke_check_display() or "—"
        elif obj.host_verified_at:
            label = "verified"
        elif obj.state == Grant.State.UNVERIFIED:
            label = "not verified"
        else:
            label = "—"
        return format_html('<span title="{}">{}</span>', obj.host_detail, label)

    @admin.display(description="last error")
    def error(self, obj):
        return format_html('<span title="{}">{}</span>', obj.last_error, Truncator(obj.last_error).chars(60))

    # -- revoking --------------------------------------------------------------------------
    def get_urls(self):
        revoke = path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view),
                      name="elevation_grant_revoke")
        evidence = path("<path:object_id>/evidence.<str:fmt>", self.admin_site.admin_view(self.evidence_view),
                        name="elevation_grant_evidence")
        return [revoke, evidence, *super().get_urls()]

    def evidence_view(self, request, object_id, fmt: str):
        """The grant's evidence as JSON or CSV, for whoever may see the grant here (approvers in scope, auditors)."""
        grant = self.get_object(request, unquote(object_id))
        if fmt not in ("json", "csv") or grant is None or not self.has_view_permission(request, grant):
            raise Http404("No such grant here.")
        return evidence_response(evidence_timeline(grant), fmt)

    def _revoke(self, request, grants, reason: str) -> None:
        done, refused = [], []
        for grant in grants:
            try:
                grant_revoke(grant=grant, actor=request.user, reason=reason)
                done.append(f"#{grant.pk}")
            except RequestRefused as e:
                refused.append(f"#{grant.pk}: {e.message}")
        if done:
            messages.success(request, f"Revoking {', '.join(done)}: the membership is being removed now.")
        for line in refused:
            messages.error(request, f"Not revoked {line}")

    def _revoke_page(self, request, grants, form, *, action: str = "", form_url: str = ""):
        return self.confirm_page(request, "admin/elevation/grant/revoke.html", title="Revoke access", form=form,
                                 objects=grants, action=action, form_url=form_url)

    @admin.action(description="Revoke selected grants now (with a reason)")
    def revoke_selected(self, request, queryset):
        grants = list(queryset.select_related("user", "target", "request__policy", "request__target")[: BULK_MAX + 1])
        if len(grants) > BULK_MAX:
            self.message_user(request, f"Revoke at most {BULK_MAX} grants at once.", messages.ERROR)
            return None
        form = RevokeForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_bound and form.is_valid():
            self._revoke(request, grants, form.cleaned_data["reason"])
            return None
        return self._revoke_page(request, grants, form, action="revoke_selected")

    def revoke_view(self, request, object_id):
        """The grant page's Revoke button posts here."""
        grant = self.get_object(request, unquote(object_id))
        if grant is None:
            self.message_user(request, "That grant does not exist or is not yours to see.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:elevation_grant_changelist"))
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:elevation_grant_change", args=[grant.pk]))
        form = RevokeForm(request.POST)
        if not form.is_valid():
            return self._revoke_page(request, [grant], form, form_url=request.path)
        self._revoke(request, [grant], form.cleaned_data["reason"])
        return HttpResponseRedirect(reverse("admin:elevation_grant_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        grant = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if grant is not None:
            extra.update({
                "can_revoke": grant.state in REVOCABLE and not grant.revoke_requested_at
                and can_revoke(user=request.user, grant=grant),
                "revoke_url": reverse("admin:elevation_grant_revoke", args=[grant.pk]),
                "revoke_form": RevokeForm(),
                "timeline": grant_timeline(grant),
                "evidence_json_url": reverse("admin:elevation_grant_evidence", args=[grant.pk, "json"]),
                "evidence_csv_url": reverse("admin:elevation_grant_evidence", args=[grant.pk, "csv"]),
            })
        return super().change_view(request, object_id, form_url, extra)
