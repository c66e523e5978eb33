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
