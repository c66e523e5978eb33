"""The admin site: django-otp's OTPAdminSite, opened to approvers (by policy, or of break-glass accounts) and staff.

Approvers are whoever a policy or target names through AD groups; nobody hand-edits
Django permissions to make someone an approver. An approver who is not staff enters the
admin and sees the elevation pages, which limit them to the requests they may decide
(``jitad.elevation.admin``); every other page keeps Django's permissions.

It sits above every app: it asks elevation and break-glass who approves.
"""
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from jitad import __version__


def _approves_anything(user) -> bool:
    """An approver of access requests (policy or target) or of break-glass checkouts."""
    from jitad.breakglass.selectors import is_breakglass_approver
    from jitad.elevation.selectors.approvers import is_approver_anywhere

    return is_approver_anywhere(user=user) or is_breakglass_approver(user=user)


class AdminLoginForm(OTPAdminAuthenticationForm):
    """The admin's login form (password + OTP), which also lets approvers in."""

    def get_invalid_login_error(self):
        """A login the throttle paused says so, with the wait (docs/logins.md); anything else, Django's words."""
        from jitad.accounts.backends import THROTTLED, login_error_message

        if getattr(self.request, "jitad_login_error", "") in THROTTLED:
            return ValidationError(login_error_message(self.request), code="throttled")
        return super().get_invalid_login_error()

    def confirm_login_allowed(self, user):
        AuthenticationForm.confirm_login_allowed(self, user)
        if not (user.is_staff or _approves_anything(user)):
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                  params={"username": self.username_field.verbose_name})


class JitadAdminSite(OTPAdminSite):
    """OTPAdminSite (a verified device is required) for staff and policy-defined approvers."""

    login_form = AdminLoginForm

    def each_context(self, request):
        """The header names the release jitad runs (``jitad.__version__``) to those the admin lets in; the
        login page does not tell it to anyone who asks."""
        context = super().each_context(request)
        if self.has_permission(request):
            context["site_header"] = f"{context['site_header']} · {__version__}"
        return context

    def has_permission(self, request):
        user = request.user
        if not (user.is_active and user.is_authenticated and user.is_verified()):
            return False
        from jitad.elevation.admin.base import is_approver

        if user.is_staff or is_approver(request):
            return True
        from jitad.breakglass.selectors import is_breakglass_approver

        return is_breakglass_approver(user=user)
