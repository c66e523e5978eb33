"""Authentication backend: a person's AD password, checked by binding as them over LDAPS."""
import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.dispatch import Signal

from jitad import directory

from . import throttle
from .models import AutomationIdentity
from .services import AccountConflict, account_sync_from_directory

log = logging.getLogger(__name__)
User = get_user_model()

# Why a login was refused, in words a person can act on. Wrong name and wrong password
# share one message so the form cannot be used to find out who has an account.
MESSAGES = {
    directory.DirectoryAuthFailed.INVALID: "The user name or password is not right.",
    directory.DirectoryAuthFailed.DISABLED: "Your AD account is disabled. Ask the service desk to enable it.",
    directory.DirectoryAuthFailed.LOCKED: "Your AD account is locked after too many wrong passwords. Wait for it to unlock or ask the service desk.",
    directory.DirectoryAuthFailed.EXPIRED: "Your AD account has expired. Ask the service desk to extend it.",
    directory.DirectoryAuthFailed.PASSWORD_EXPIRED: "Your AD password has expired. Change it in Windows, then log in again.",
    directory.DirectoryAuthFailed.MUST_CHANGE: "Your AD password must be changed before first use. Change it in Windows, then log in again.",
    directory.DirectoryAuthFailed.RESTRICTED: "Your AD account may not log in at this time or from here.",
    "directory_unavailable": "Active Directory cannot be reached right now, so AD logins do not work. Try again in a few minutes; local accounts still work.",
    "directory_misconfigured": "jitad's connection to Active Directory is misconfigured. Tell the jitad operators.",
    "account_conflict": "Your AD account cannot be used here: a local jitad account already has that name. Tell the jitad operators.",
    "sealed_account": "This is a sealed break-glass account: it never logs in to jitad. Use your own account.",
    "account_blocked": "Your jitad access is blocked by the jitad operators.",
    "automation_identity": "This account is an automation identity: it uses the API with its own token and never logs in here.",
    # Pauses of the login throttle (docs/logins.md); the password was not checked.
    "throttled_client": "Too many failed logins from your address. Try again in {wait}.",
    "throttled_account": "Too many wrong passwords for this account. Try again in {wait}.",
}
THROTTLED = ("throttled_client", "throttled_account")


def login_error_message(request) -> str:
    """The words for why the login on ``request`` was refused (the wrong-password words if none was left)."""
    code = getattr(request, "jitad_login_error", "") if request is not None else ""
    text = MESSAGES.get(code, MESSAGES[directory.DirectoryAuthFailed.INVALID])
    if code not in THROTTLED:
        return text
    seconds = getattr(request, "jitad_login_wait", 0)
    return text.format(wait="1 second" if seconds == 1 else f"{seconds} seconds")


def _refuse(request, code: str):
    """Leave the reason for the login form; the user_login_failed signal audits it."""
    if request is not None:
        request.jitad_login_error = code


def _check_throttle(request, username: str, account: str = "") -> None:
    """Refuse an attempt the login throttle pauses, before a password is checked anywhere
    (PermissionDenied stops Django trying other backends). Checked once per request.
    ``account``: the AD account ``username`` names, which the throttle counts by."""
    if request is not None and getattr(request, "_jitad_throttle_checked", None) == username:
        return
    pause = throttle.login_pause(request=request, username=username, account=account)
    if pause is not None:
        _refuse(request, "throttled_client" if pause.scope == throttle.CLIENT else "throttled_account")
        if request is not None:
            request.jitad_login_wait = pause.seconds
        raise PermissionDenied("throttled")
    if request is not None:
        request._jitad_throttle_checked = username


def _is_automation(user) -> bool:
    return AutomationIdentity.objects.filter(user=user).exists()


class ThrottledModelBackend(ModelBackend):
    """Django's local-password backend, behind the same throttle as AD logins (never for an automation identity)."""

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and not _is_automation(user)

    def get_user(self, user_id):
        """The session's user, active, without asking whether it is an automation identity: Django calls this on every
        request, and a login is where that is refused. An identity made from an account that had a session
        ends it: its password is made unusable, which changes the hash the session was signed with."""
        user = User.objects.filter(pk=user_id).first()
        return user if user is not None and ModelBackend.user_can_authenticate(self, user) else None

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username:
            _check_throttle(request, username)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            throttle.login_success_record(request=request, username=username)
        return user


# Asked after AD accepted a password, before the account is mirrored: is this directory
# account one that must never log in to the portal? Accounts sits below the apps that
# know (break-glass seals AD accounts), so it asks them: each connects a receiver (in its
# AppConfig.ready) sent with ``entry`` (a directory.DirectoryUser) that returns a code of
# MESSAGES to refuse with, or None. A receiver's error propagates: no login on a guess.
portal_login_refusal_asked = Signal()


def portal_login_refusal(entry) -> str | None:
    """The code (of MESSAGES) an app refuses ``entry``'s portal login with, or None (``portal_login_refusal_asked``)."""
    for _receiver, code in portal_login_refusal_asked.send(sender=type(entry), entry=entry):
        if code:
            return code
    return None


class ActiveDirectoryBackend:
    """Checks AD credentials through the directory seam and mirrors the account locally.

    Names held by local accounts are left to ModelBackend, so an AD account can never
    take over the first admin or a break-glass operator. When AD refuses for a reason
    the person can act on, PermissionDenied stops Django from trying other backends and
    the reason is left on the request for the login form to show.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or password is None:
            return None
        local = User.objects.filter(username__iexact=username.strip()).select_related("directory_account").first()
        if local is not None and not hasattr(local, "directory_account"):
            return None  # ModelBackend checks it, behind the throttle

        def before_bind(found):
            # Counted per AD account, however the name was typed (sAMAccountName, DOMAIN\name, UPN, any case):
            # AD counts its failed binds per account, so jitad's limits must too.
            _check_throttle(request, username, account=found.sam_account_name if found is not None else "")

        try:
            entry, groups = directory.authenticate_user(username.strip(), password, before_bind=before_bind)
        except directory.DirectoryAuthFailed as e:
            _refuse(request, e.reason)
            if e.reason == directory.DirectoryAuthFailed.INVALID:
                return None
            raise PermissionDenied(e.reason) from None
        except directory.DirectoryUnavailable as e:
            log.warning("AD login for %r: directory unavailable: %s", username, e)
            _refuse(request, "directory_unavailable")
            return None  # a local account of the same name may still log in
        except directory.DirectoryMisconfigured as e:
            log.error("AD login for %r: directory misconfigured: %s", username, e)
            _refuse(request, "directory_misconfigured")
            return None
        throttle.login_success_record(request=request, username=username)
        refusal = portal_login_refusal(entry)
        if refusal:
            # E.g. a break-glass account's holder must never get a second identity here (one that
            # could approve), nor turn the account into a "person's login" that blocks rotation.
            log.warning("AD login for %r refused: %s", username, refusal)
            _refuse(request, refusal)
            raise PermissionDenied(refusal)
        if AutomationIdentity.objects.filter(user__directory_account__guid=entry.guid).exists():
            log.warning("AD login for %r refused: an automation identity", username)
            _refuse(request, "automation_identity")
            raise PermissionDenied("automation_identity")
        try:
            user = account_sync_from_directory(entry=entry, groups=groups)
        except AccountConflict as e:
            log.error("AD login for %r refused: %s", username, e)
            _refuse(request, "account_conflict")
            raise PermissionDenied("account_conflict") from None
        if not user.is_active:
            _refuse(request, "account_blocked")
            raise PermissionDenied("account_blocked")
        return user

    def get_user(self, user_id):
        user = User.objects.filter(pk=user_id).first()
        return user if user is not None and user.is_active else None
