"""Break-glass in the admin: sealed accounts (enrol, rotate), checkouts (approve, deny, force check-in), reviews.

Approvers are whoever a sealed account names in ``approver_groups``; they see that
account's checkouts and reviews and decide through the services, which refuse
self-approval, a second decision by the same person and decisions on checkouts no longer
pending. The middleware asks for a fresh OTP before any POST here goes through.
"""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from jitad.accounts.mfa import mfa_step_of
from jitad.admin_helpers import ReadOnlyAdmin, span
from jitad.humantime import when

from . import services
from .errors import BreakglassRefused
from .models import Checkout, CheckoutApproval, Review, RunbookTick, Seal, SealedAccount
from .selectors import (accounts_approved_by, can_decide_checkout, can_force_checkin, is_account_approver,
                        is_breakglass_approver)


def _sees_all(request, model) -> bool:
    user, opts = request.user, model._meta
    return user.is_superuser or (user.is_staff and user.has_perm(f"{opts.app_label}.view_{opts.model_name}"))


def _badge(state: str, label: str):
    return format_html('<span class="jitad-state jitad-state-bg-{}">{}</span>', state, label)


class ApproverScopedAdmin(ReadOnlyAdmin):
    """Read-only rows that approvers see for their accounts; superusers and auditors see all."""

    account_path = "account"
    show_facets = admin.ShowFacets.NEVER

    class Media:
        css = {"all": ["jitad/admin.css"]}

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if _sees_all(request, self.model):
            return qs
        mine = accounts_approved_by(user=request.user).values("pk")
        return qs.filter(**{f"{self.account_path}__in": mine})

    def has_view_permission(self, request, obj=None):
        return _sees_all(request, self.model) or is_breakglass_approver(user=request.user)

    def has_module_permission(self, request):
        return self.has_view_permission(request)


# -- sealed accounts -------------------------------------------------------------------------
class SealedAccountForm(forms.ModelForm):
    class Meta:
        model = SealedAccount
        fields = ["name", "description", "disable_when_sealed", "emergency_allowed", "approvals_required",
                  "responder_groups", "approver_groups", "max_checkout_minutes"]

    def clean_name(self):
        name = (self.cleaned_data.get("name") or "").strip()
        if self.instance.pk is None and SealedAccount.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError(f"{name} is already a sealed account.")
        return name


class SealInline(admin.TabularInline):
    model = Seal
    extra = 0
    can_delete = False
    fields = readonly_fields = ("seal_id", "reason", "created_at", "broken_at", "broken_reason", "envelope_printed_at",
                                "envelope_printed_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SealedAccount)
class SealedAccountAdmin(admin.ModelAdmin):
    form = SealedAccountForm
    list_display = ("name", "state_badge", "holder", "seal_id", "sealed_at", "envelope", "approvals_required",
                    "disable_when_sealed", "last_error")
    list_filter = ("state",)
    search_fields = ("name", "description")
    inlines = [SealInline]
    actions = ["rotate_now"]
    show_facets = admin.ShowFacets.NEVER

    class Media:
        css = {"all": ["jitad/admin.css"]}

    def get_readonly_fields(self, request, obj=None):
        shown = ["state", "seal_id", "sealed_at", "exposed_since", "user_dn", "user_sid", "enrolled_at", "enrolled_by",
                 "attempts", "next_attempt_at", "last_error"]
        # The name is what AD knows the account by: fixed once enrolled.
        return (["name", *shown] if obj is not None else [])

    def has_delete_permission(self, request, obj=None):
        return False  # checkouts and seals refer to it forever; a retired account stays, sealed

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return _badge(obj.state, obj.get_state_display())

    @admin.display(description="holder")
    def holder(self, obj):
        live = obj.checkouts.filter(state__in=Checkout.LIVE_STATES).select_related("holder").first()
        if live is None:
            return "-"
        until = f", until {when(live.expires_at)}" if live.expires_at else ""
        return f"{live.holder.get_username()} ({live.get_state_display()}{until})"

    @admin.display(description="envelope")
    def envelope(self, obj):
        printed = obj.seals.filter(seal_id=obj.seal_id, envelope_printed_at__isnull=False).exists() if obj.seal_id else False
        return "current" if printed else "-"

    def save_model(self, request, obj, form, change):
        actor = request.user.get_username()
        if change:
            # Only what the form changed: a rotation or checkout committing meanwhile keeps its secret and state.
            obj.save(update_fields=[*form.changed_data, "updated_at"])
            services.account_update(account=obj, actor=actor,
                                    changed={f: form.cleaned_data.get(f) for f in form.changed_data})
            return
        try:
            services.account_enrol(account=obj, actor=actor)
        except BreakglassRefused as e:
            # The add form's validation already caught what a person can fix; this is a race.
            self.message_user(request, e.message, messages.ERROR)

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:  # refused by the service (a race with another enrolment): nothing was saved
            return HttpResponseRedirect(reverse("admin:breakglass_sealedaccount_changelist"))
        return super().response_add(request, obj, post_url_continue)

    def log_addition(self, request, obj, message):
        return None if obj.pk is None else super().log_addition(request, obj, message)

    @admin.action(description="Rotate the password now", permissions=["change"])
    def rotate_now(self, request, queryset):
        for account in queryset:
            try:
                services.account_rotate(account=account, actor=request.user.get_username(),
                                        reason=f"asked for in the admin by {request.user.get_username()}")
                self.message_user(request, f"{account.name}: rotation started.")
            except BreakglassRefused as e:
                self.message_user(request, f"{account.name}: {e.message}", messages.ERROR)


# -- checkouts -------------------------------------------------------------------------------
class CheckoutApprovalInline(admin.TabularInline):
    model = CheckoutApproval
    extra = 0
    can_delete = False
    fields = readonly_fields = ("approver", "decision", "comment", "at", "mfa_method", "mfa_verified_at")

    def has_view_permission(self, request, obj=None):
        # Whoever sees the checkout (its approvers, scoped by the parent admin) sees its decisions and ticks.
        return _sees_all(request, Checkout) or is_breakglass_approver(user=request.user)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RunbookTickInline(CheckoutApprovalInline):
    model = RunbookTick
    fields = readonly_fields = ("step_number", "step_text", "done", "by", "at")


class DecideForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny"), ("checkin", "Check in now")])
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(Checkout)
class CheckoutAdmin(ApproverScopedAdmin):
    list_display = ("ident", "account", "holder", "purpose", "mode", "incident_ref", "state_badge", "approvals_shown",
                    "requested_at", "expires_at", "revealed_at")
    list_filter = ("state", "mode", "purpose")
    search_fields = ("account__name", "holder__username", "incident_ref")
    list_select_related = ("account", "holder")
    readonly_fields = [f.name for f in Checkout._meta.fields if f.name not in ("claim_token", "lease_until")]
    exclude = ("claim_token", "lease_until")
    inlines = [CheckoutApprovalInline, RunbookTickInline]
    change_form_template = "admin/breakglass/checkout/change_form.html"

    def get_ordering(self, request):
        return ("-requested_at",)

    @admin.display(description="#", ordering="id")
    def ident(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return _badge(obj.state, obj.get_state_display())

    @admin.display(description="approvals")
    def approvals_shown(self, obj):
        if obj.mode == Checkout.Mode.EMERGENCY:
            return format_html('<span class="jitad-flag">{}</span>', "emergency: none")
        done = obj.approvals.filter(decision=CheckoutApproval.Decision.APPROVE).count()
        return f"{done} of {obj.approvals_required}"

    def get_urls(self):
        decide = path("<path:object_id>/decide/", self.admin_site.admin_view(self.decide_view),
                      name="breakglass_checkout_decide")
        return [decide, *super().get_urls()]

    def decide_view(self, request, object_id):
        """The checkout page's Approve / Deny / Check in buttons post here."""
        checkout = self.get_object(request, unquote(object_id))
        back = reverse("admin:breakglass_checkout_changelist")
        if checkout is None:
            self.message_user(request, "That checkout does not exist or is not yours to see.", messages.ERROR)
            return HttpResponseRedirect(back)
        change_url = reverse("admin:breakglass_checkout_change", args=[checkout.pk])
        form = DecideForm(request.POST if request.method == "POST" else None)
        if request.method != "POST" or not form.is_valid():
            return HttpResponseRedirect(change_url)
        decision, comment = form.cleaned_data["decision"], form.cleaned_data["comment"]
        try:
            if decision == "approve":
                row = services.checkout_approve(checkout=checkout, approver=request.user, comment=comment,
                                                mfa=mfa_step_of(request))
                text = ("Approved: the checkout is open." if row.state != Checkout.State.PENDING
                        else "Your approval is recorded; the checkout waits for another approver.")
            elif decision == "deny":
                services.checkout_deny(checkout=checkout, approver=request.user, comment=comment,
                                       mfa=mfa_step_of(request))
                text = "Denied."
            else:
                services.checkout_checkin(checkout=checkout, actor=request.user, reason=comment)
                text = "Checked in: the password is being rotated."
        except BreakglassRefused as e:
            self.message_user(request, e.message, messages.ERROR)
            return HttpResponseRedirect(change_url)
        self.message_user(request, text)
        return HttpResponseRedirect(change_url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        checkout = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if checkout is not None:
            pending = checkout.state == Checkout.State.PENDING
            decided = checkout.approvals.filter(approver=request.user).exists()
            extra.update({
                "can_decide": pending and not decided and can_decide_checkout(user=request.user, checkout=checkout),
                "already_decided": pending and decided,
                "own_checkout": checkout.holder_id == request.user.pk,
                "can_checkin": checkout.state in (Checkout.State.OPENING, Checkout.State.OPEN)
                and checkout.holder_id != request.user.pk and can_force_checkin(user=request.user, checkout=checkout),
                "decide_url": reverse("admin:breakglass_checkout_decide", args=[checkout.pk]),
                "waited": span(((checkout.decided_at or timezone.now()) - checkout.requested_at).total_seconds()),
                "approved": checkout.approvals.filter(decision=CheckoutApproval.Decision.APPROVE).count(),
            })
        return super().change_view(request, object_id, form_url, extra)


# -- reviews ---------------------------------------------------------------------------------
class CloseForm(forms.Form):
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(Review)
class ReviewAdmin(ApproverScopedAdmin):
    account_path = "checkout__account"
    list_display = ("checkout_ref", "holder", "incident", "mandatory", "state_badge", "was_needed", "created_at",
                    "filed_at", "closed_by")
    list_filter = ("state", "mandatory", "was_needed")
    list_select_related = ("checkout__account", "checkout__holder")
    readonly_fields = [f.name for f in Review._meta.fields]
    change_form_template = "admin/breakglass/review/change_form.html"

    def get_ordering(self, request):
        return ("state", "-created_at")

    @admin.display(description="checkout")
    def checkout_ref(self, obj):
        return f"#{obj.checkout_id} {obj.checkout.account.name}"

    @admin.display(description="holder")
    def holder(self, obj):
        return obj.checkout.holder.get_username()

    @admin.display(description="incident")
    def incident(self, obj):
        return obj.checkout.incident_ref

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return _badge(obj.state, obj.get_state_display())

    def get_urls(self):
        close = path("<path:object_id>/close/", self.admin_site.admin_view(self.close_view),
                     name="breakglass_review_close")
        return [close, *super().get_urls()]

    def close_view(self, request, object_id):
        review = self.get_object(request, unquote(object_id))
        if review is None:
            self.message_user(request, "That review does not exist or is not yours to see.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:breakglass_review_changelist"))
        change_url = reverse("admin:breakglass_review_change", args=[review.pk])
        form = CloseForm(request.POST if request.method == "POST" else None)
        if request.method != "POST" or not form.is_valid():
            return HttpResponseRedirect(change_url)
        try:
            services.review_close(review=review, actor=request.user, comment=form.cleaned_data["comment"])
        except BreakglassRefused as e:
            self.message_user(request, e.message, messages.ERROR)
            return HttpResponseRedirect(change_url)
        self.message_user(request, "Review closed.")
        return HttpResponseRedirect(reverse("admin:breakglass_review_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        review = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if review is not None:
            checkout = review.checkout
            extra.update({
                "can_close": review.state != Review.State.CLOSED and checkout.holder_id != request.user.pk
                and (request.user.is_superuser or is_account_approver(user=request.user, account=checkout.account)),
                "close_url": reverse("admin:breakglass_review_close", args=[review.pk]),
                "ticks": list(checkout.ticks.all()),
            })
        return super().change_view(request, object_id, form_url, extra)
