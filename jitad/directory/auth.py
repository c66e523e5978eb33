"""Checking a person's AD password: bind as them over TLS and read why the DC refused.

AD (and Samba) refuse a simple bind with result 49 and a "data NNN" sub-code that says
why: 52e wrong password, 533 disabled, 775 locked out, 532 password expired, 773 must
change password, 701 account expired, 530/531 logon-hours or workstation restriction.
A disabled account only says 533 when the password was right, so "disabled" is only ever
told to someone who knew the password. 775 (locked) comes whatever the password, as it
does at a Windows logon screen.
"""
import re
from collections.abc import Callable

from ldap3.core import exceptions as lx

from .config import DirectoryConfig
from .connection import bind_each, session
from .errors import DirectoryAuthFailed, DirectoryRejected
from .users import DirectoryUser

_DATA_CODE = re.compile(r"\bdata ([0-9a-fA-F]{3,8})\b")
_REASONS = {
    "52e": DirectoryAuthFailed.INVALID,
    "525": DirectoryAuthFailed.INVALID,
    "533": DirectoryAuthFailed.DISABLED,
    "775": DirectoryAuthFailed.LOCKED,
    "532": DirectoryAuthFailed.PASSWORD_EXPIRED,
    "773": DirectoryAuthFailed.MUST_CHANGE,
    "701": DirectoryAuthFailed.EXPIRED,
    "530": DirectoryAuthFailed.RESTRICTED,
    "531": DirectoryAuthFailed.RESTRICTED,
}
_INVALID_CREDENTIALS = 49


def _reason(error: DirectoryRejected) -> str:
    cause = error.__cause__
    if not isinstance(cause, lx.LDAPOperationResult) or cause.result != _INVALID_CREDENTIALS:
        return ""
    m = _DATA_CODE.search(cause.message or "")
    return _REASONS.get(m.group(1).lower(), DirectoryAuthFailed.INVALID) if m else DirectoryAuthFailed.INVALID


def authenticate_user(name: str, password: str, config: DirectoryConfig | None = None, *,
                      before_bind: Callable[[DirectoryUser | None], None] | None = None) -> tuple[DirectoryUser, list[str]]:
    """Check ``password`` for the AD user ``name``; return the user and their (nested) group names.

    ``before_bind`` is called with the user ``name`` resolves to (None if no single user) once
    it is looked up and before any bind: whatever it raises stops the attempt unchecked (the
    login throttle counts per account with it, however the name was typed).

    Raises DirectoryAuthFailed with a reason, DirectoryUnavailable when no DC answers,
    DirectoryMisconfigured when jitad's own bind is wrong. The password is never logged
    and never part of an exception message.
    """
    config = config or DirectoryConfig.from_settings()
    user, not_found = None, None
    with session(config) as d:
        try:
            user = d.find_user(name)
        except DirectoryRejected as e:  # no such user, ambiguous or malformed: same answer as a wrong password
            not_found = e
    if before_bind is not None:
        before_bind(user)
    if user is None:
        raise DirectoryAuthFailed(DirectoryAuthFailed.INVALID) from not_found
    # An empty password makes a simple bind "unauthenticated" and the DC says yes.
    if not password or "\x00" in password or len(password) > 1024:
        raise DirectoryAuthFailed(DirectoryAuthFailed.INVALID)
    try:
        conn, _url = bind_each(config, user.dn, password)
    except DirectoryRejected as e:
        raise DirectoryAuthFailed(_reason(e) or DirectoryAuthFailed.INVALID) from e
    conn.unbind()
    with session(config) as d:
        if user.disabled:
            raise DirectoryAuthFailed(DirectoryAuthFailed.DISABLED)
        if d.account_locked(user.dn):
            raise DirectoryAuthFailed(DirectoryAuthFailed.LOCKED)
        groups = d.groups_of(user.dn)
    return user, groups


def password_works(user_dn: str, password: str, config: DirectoryConfig | None = None) -> bool:
    """True if ``password`` is the account's current password, whether or not the account is enabled.

    A DC tells a right password on a disabled account apart (533) from a wrong one (52e),
    so a sealed account's password can be verified while it stays disabled. Other refusals
    (locked out, expired) say nothing either way and raise DirectoryRejected.
    """
    config = config or DirectoryConfig.from_settings()
    if not password:
        return False
    try:
        conn, _url = bind_each(config, user_dn, password)
    except DirectoryRejected as e:
        reason = _reason(e)
        if reason == DirectoryAuthFailed.INVALID:
            return False
        if reason in (DirectoryAuthFailed.DISABLED, DirectoryAuthFailed.PASSWORD_EXPIRED, DirectoryAuthFailed.MUST_CHANGE):
            return True
        raise DirectoryRejected(f"the password of {user_dn} could not be checked: {reason or e}") from e
    conn.unbind()
    return True
