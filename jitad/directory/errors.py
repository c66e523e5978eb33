"""The directory seam's own exceptions, and :func:`translate`, which turns ldap3's into them.

ldap3's exceptions never leave jitad/directory/.
"""
from contextlib import contextmanager

from ldap3.core import exceptions as lx

# Result codes a DC uses for "not now": timeLimitExceeded, busy, unavailable.
_TRANSIENT_RESULTS = {3, 51, 52}
_ENTRY_ALREADY_EXISTS = 68
_UNWILLING_TO_PERFORM = 53
_NO_SUCH_ATTRIBUTE = 16
_NO_SUCH_OBJECT = 32


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


def unexpected(e: Exception) -> DirectoryError:
    """A non-directory error during directory work (a bug), as a permanent DirectoryError: the caller
    records it, stops retrying and alerts, instead of losing the work to a traceback."""
    wrapped = DirectoryError(f"unexpected {type(e).__name__}: {e}")
    wrapped.__cause__ = e
    return wrapped


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


@contextmanager
def translate(operation: str):
    """Turn ldap3's exceptions into the seam's own, transient or permanent."""
    try:
        yield
    except DirectoryError:
        raise
    except lx.LDAPOperationResult as e:
        detail = f"{operation}: {e.description} ({e.result}) {e.message or ''}".strip()
        if e.result in _TRANSIENT_RESULTS:
            raise DirectoryUnavailable(detail) from e
        if e.result == _NO_SUCH_OBJECT:
            raise DirectoryNotFound(detail) from e
        raise DirectoryRejected(detail) from e
    except (lx.LDAPCommunicationError, lx.LDAPResponseTimeoutError, lx.LDAPMaximumRetriesError, OSError) as e:
        raise DirectoryUnavailable(f"{operation}: {type(e).__name__}: {e}") from e
    except (lx.LDAPCertificateError, lx.LDAPSSLConfigurationError, lx.LDAPStartTLSError) as e:
        raise DirectoryUnavailable(f"{operation}: TLS failed: {e}") from e
    except lx.LDAPException as e:
        raise DirectoryRejected(f"{operation}: {type(e).__name__}: {e}") from e


# ldap3's ways of saying the connection itself is gone (closed by the DC, reset, not open), as
# opposed to a DC that answered with an error: after one of these nothing more is read on it.
_CONNECTION_LOST = (lx.LDAPSessionTerminatedByServerError, lx.LDAPSocketOpenError, lx.LDAPSocketSendError,
                    lx.LDAPSocketReceiveError, lx.LDAPSocketCloseError, lx.LDAPResponseTimeoutError, OSError)


def connection_lost(e: DirectoryError) -> bool:
    """True if ``e`` says the connection died (or stopped answering) rather than that the DC refused."""
    return isinstance(e, DirectoryUnavailable) and isinstance(e.__cause__, _CONNECTION_LOST)


def _result_code(e: DirectoryError) -> int | None:
    cause = e.__cause__
    return getattr(cause, "result", None)
