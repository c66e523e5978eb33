"""The directory seam's own exceptions; ldap3's never leave jitad/directory/."""


class DirectoryError(Exception):
    """Base of every directory failure."""

    transient = False


class DirectoryUnavailable(DirectoryError):
    """No DC answered, or one stopped answering mid-operation: worth retrying."""

    transient = True


class DirectoryRejected(DirectoryError):
    """A DC answered and refused (bad credentials, no such object, constraint): retrying won't help."""


class DirectoryNotFound(DirectoryRejected):
    """The user, group or object named does not exist."""


class DirectoryMisconfigured(DirectoryError):
    """jitad's own directory settings are unusable (no URL, no CA, plaintext LDAP)."""


class DirectoryAuthFailed(DirectoryRejected):
    """A person's AD password check failed; ``reason`` says why in a form safe to show them."""

    INVALID = "invalid_credentials"
    DISABLED = "account_disabled"
    LOCKED = "account_locked"
    EXPIRED = "account_expired"
    PASSWORD_EXPIRED = "password_expired"
    MUST_CHANGE = "password_must_change"
    RESTRICTED = "logon_restricted"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DirectoryNotManaged(DirectoryRejected):
    """jitad was asked to change a group it does not own (outside the JIT OU, or protected)."""

    def __init__(self, dn: str, message: str):
        super().__init__(message)
        self.dn = dn
