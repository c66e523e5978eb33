"""The approval queue: access requests in the admin, decided through the services.

Approvers are defined by policy (AD groups on the policy or the target), so an approver
sees the requests in their scope only; superusers and staff with the view permission see
all of them. Nobody edits a request: approve and deny are admin actions and buttons on
the request's page, and both call ``request_approve`` / ``request_deny``, which refuse
self-approval, non-approvers and decisions on requests no longer pending. The middleware
asks for a fresh OTP before any of these POSTs goes through.
"""
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from jitad.accounts.mfa import mfa_step_of
from jitad.humantime import when

from ..errors import RequestRefused
from ..models import AccessRequest, Approval
from ..selectors.approvers import approver_scope, can_decide, open_stage_groups, stage_rows, stage_summary
from ..selectors.decision_context import DecisionContext, decision_context_for
from ..services import request_approve, request_deny
from .base import BULK_MAX, ScopedReadOnlyAdmin, span
from .filters import QueueFilter, RequesterFilter, TargetFilter, WaitingFilter
from .forms import DecisionForm

class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    can_delete = False
    fields = readonly_fields = ("approver", "on_behalf_of", "stage_number", "decision", "approver_groups", "comment", "at",
                                "mfa_method", "mfa_verified_at")

    @admin.display(description="stage")
    def stage_number(self, obj):
        return obj.stage + 1

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RequestChangeList(ChangeList):
    """Adds each row's decision context, for the whole page in a fixed number of queries."""

    def get_results(self, request):
        super().get_results(request)
        rows = list(self.result_list)
        context = decision_context_for(rows)
        for row in rows:
            row.decision_context = context.get(row.pk, DecisionContext())


@admin.register(AccessRequest)
class AccessRequestAdmin(ScopedReadOnlyAdmin):
    list_display = ("ident", "waiting", "requester_name", "target_name", "duration", "reason", "ticket",
                    "progress", "history", "holds_now", "limits", "state_badge")
    list_display_links = ("ident",)
    list_filter = (QueueFilter, "state", "target__tier", "kind", WaitingFilter, TargetFilter, RequesterFilter)
    person_field = "requester"
    search_help_text = "Search by request number, requester (name), target (name or host) or exact ticket."
    list_select_related = ("requester", "target", "policy")
    list_per_page = 50
    actions = ["approve_selected", "deny_selected"]
    inlines = [ApprovalInline]
    readonly_fields = [f.name for f in AccessRequest._meta.fields]
    change_form_template = "admin/elevation/accessrequest/change_form.html"

    class Media:
        css = {"all": ["jitad/admin.css"]}

    # -- who sees what ------------------------------------------------------------------
    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if self.sees_all(request) else qs.filter(approver_scope(user=request.user))

    def search_filter(self, term, people, targets):
        return super().search_filter(term, people, targets) | Q(ticket__in={term, term.upper()})

    def get_ordering(self, request):
        # The queue opens on the longest-waiting request; history on the newest.
        if request.GET.get(QueueFilter.parameter_name, QueueFilter.default) in ("mine", "pending"):
            return ("created_at", "id")
        return ("-created_at", "-id")

    def get_changelist(self, request, **kwargs):
        return RequestChangeList

    # -- columns -------------------------------------------------------------------------
    @admin.display(description="#", ordering="id")
    def ident(self, obj):
        return f"#{obj.pk}" + (" (extension)" if obj.kind == AccessRequest.Kind.EXTENSION else "")

    @admin.display(description="waiting", ordering="created_at")
    def waiting(self, obj):
        if obj.state == AccessRequest.State.PENDING:
            return span((timezone.now() - obj.created_at).total_seconds())
        if obj.decided_at:
            return format_html('<span class="jitad-muted">decided after {}</span>',
                               span((obj.decided_at - obj.created_at).total_seconds()))
        return "-"

    @admin.display(description="requester", ordering="requester__username")
    def requester_name(self, obj):
        user = obj.requester
        full = user.get_full_name()
        return f"{full} ({user.get_username()})" if full else user.get_username()

    @admin.display(description="for", ordering="duration_minutes")
    def duration(self, obj):
        return span(obj.duration_minutes * 60)

    @admin.display(description="justification")
    def reason(self, obj):
        return format_html('<span title="{}">{}</span>', obj.justification,
                           Truncator(obj.justification).chars(90))

    @admin.display(description="approvals")
    def progress(self, obj):
        ctx = obj.decision_context
        if obj.approvals_required == 0:
            return "time window (automatic)" if obj.window_action == "auto" else "policy (automatic)"
        text = f"{ctx.approvals} of {ctx.required}"
        if len(obj.stages or []) > 1:
            at = (f"stage {obj.stage + 1} of {len(obj.stages)} ({obj.stages[obj.stage].get('name', '')})"
                  if obj.stage < len(obj.stages) else f"{len(obj.stages)} stages passed")
            text += f" · {at}" + (" · escalated" if obj.escalated_at else "")
        if obj.policy.distinct_approver_groups:
            text += ", distinct groups"
        if ctx.decided_by:
            return format_html('{}<br><span class="jitad-muted">{}</span>', text, ", ".join(ctx.decided_by))
        return text

    @admin.display(description="recent use of this target")
    def history(self, obj):
        ctx = obj.decision_context
        if not ctx.recent_count:
            return format_html('<span class="jitad-muted">none in the last {} days</span>',
                               settings.JITAD_CONTEXT_HISTORY_DAYS)
        text = (f"{ctx.recent_count}× · {ctx.recent_hours:g} h · "
                f"on {ctx.days_held} of the last {settings.JITAD_ALWAYS_ON_WINDOW_DAYS} days")
        if ctx.always_on:
            return format_html('<span class="jitad-flag" title="{}">always-on</span> {}',
                               "Held on most recent days: a standing right in disguise? Consider a role review.",
                               text)
        return text

    @admin.display(description="holds now")
    def holds_now(self, obj):
        held = obj.decision_context.active
        if not held:
            return format_html('<span class="jitad-muted">{}</span>', "nothing")
        shown = format_html_join(", ", "{} <span class=\"jitad-muted\">(until {})</span>",
                                 ((a.target, when(a.expires_at)) for a in held[:3]))
        more = f" and {len(held) - 3} more" if len(held) > 3 else ""
        return format_html("{}{}", shown, more)

    @admin.display(description="policy limits")
    def limits(self, obj):
        p = obj.policy
        return format_html('<span title="policy {}">max {}, {} extension(s)</span>', p.name,
                           span(p.max_duration_minutes * 60), p.max_extensions)

    # -- deciding --------------------------------------------------------------------------
    def get_urls(self):
        decide = path("<path:object_id>/decide/", self.admin_site.admin_view(self.decide_view),
                      name="elevation_accessrequest_decide")
        return [decide, *super().get_urls()]

    def _decide(self, request, requests: list[AccessRequest], decision: str, comment: str) -> None:
        """Apply one decision to each request through the services; report each outcome."""
        done, refused = [], []
        mfa = mfa_step_of(request)
        for req in requests:
            try:
                if decision == "approve":
                    request_approve(request=req, approver=request.user, comment=comment, mfa=mfa)
                else:
                    request_deny(request=req, approver=request.user, comment=comment, mfa=mfa)
                done.append(f"#{req.pk}")
            except RequestRefused as e:
                refused.append(f"#{req.pk}: {e.message}")
        verb = "Approved" if decision == "approve" else "Denied"
        if done:
            messages.success(request, f"{verb} {', '.join(done)}.")
        for line in refused:
            messages.error(request, f"Not decided {line}")

    def _decision_page(self, request, requests, form, *, action: str = "", form_url: str = ""):
        contexts = decision_context_for(requests)
        return self.confirm_page(
            request, "admin/elevation/accessrequest/decide.html",
            title="Approve requests" if form["decision"].value() == "approve" else "Deny requests",
            form=form, objects=requests, action=action, form_url=form_url,
            rows=[(r, contexts.get(r.pk)) for r in requests], history_days=settings.JITAD_CONTEXT_HISTORY_DAYS,
        )

    def _bulk(self, request, queryset, decision: str):
        requests = list(queryset.select_related("policy", "target", "requester")[: BULK_MAX + 1])
        if len(requests) > BULK_MAX:
            self.message_user(request, f"Decide at most {BULK_MAX} requests at once.", messages.ERROR)
            return None
        if len(requests) > 1:
            one_by_one = sorted({r.policy.name for r in requests if not r.policy.allow_bulk_decisions})
            if one_by_one:
                self.message_user(
                    request,
                    f"Policy {', '.join(one_by_one)} requires deciding its requests one at a time; "
                    "select only those, one by one, or only requests of policies that allow bulk decisions.",
                    messages.ERROR,
                )
                return None
        form = DecisionForm(request.POST if request.POST.get("post") == "yes" else None,
                            initial={"decision": decision})
        if form.is_bound and form.is_valid():
            self._decide(request, requests, form.cleaned_data["decision"], form.cleaned_data["comment"])
            return None
        return self._decision_page(request, requests, form, action=f"{decision}_selected")

    @admin.action(description="Approve selected requests")
    def approve_selected(self, request, queryset):
        return self._bulk(request, queryset, "approve")

    @admin.action(description="Deny selected requests (with a comment)")
    def deny_selected(self, request, queryset):
        return self._bulk(request, queryset, "deny")

    def decide_view(self, request, object_id):
        """The request page's Approve / Deny buttons post here."""
        change_url = reverse("admin:elevation_accessrequest_change", args=[object_id])
        req = self.get_object(request, unquote(object_id))
        if req is None:
            self.message_user(request, "That request does not exist or is not yours to see.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:elevation_accessrequest_changelist"))
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        form = DecisionForm(request.POST)
        if not form.is_valid():
            return self._decision_page(request, [req], form, form_url=request.path)
        self._decide(request, [req], form.cleaned_data["decision"], form.cleaned_data["comment"])
        return HttpResponseRedirect(reverse("admin:elevation_accessrequest_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        req = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if req is not None:
            extra.update({
                "decision_context": decision_context_for([req]).get(req.pk),
                "already_decided": req.approvals.filter(Q(approver=request.user) | Q(on_behalf_of=request.user)).exists(),
                "can_decide": req.state == AccessRequest.State.PENDING and can_decide(user=request.user, request=req),
                "own_request": req.requester_id == request.user.pk,
                "approver_groups": open_stage_groups(req),
                "stage_rows": stage_rows(req),
                "stage_summary": stage_summary(req),
                "decide_url": reverse("admin:elevation_accessrequest_decide", args=[req.pk]),
                "comment_form": DecisionForm(),
                "history_days": settings.JITAD_CONTEXT_HISTORY_DAYS,
                "window_days": settings.JITAD_ALWAYS_ON_WINDOW_DAYS,
                "waited": span(((req.decided_at or timezone.now()) - req.created_at).total_seconds()),
            })
            extra["can_decide"] = extra["can_decide"] and not extra["already_decided"]
        return super().change_view(request, object_id, form_url, extra)
