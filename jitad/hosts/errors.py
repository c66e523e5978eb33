"""The host seam's own exceptions; pywinrm's and requests' never leave jitad/hosts/."""


class HostError(Exception):
    """Base of every failure talking to a Windows host over WinRM."""

    transient = False


class HostUnreachable(HostError):
    """Nothing answered (refused, DNS, TLS handshake cut, connection dropped): worth retrying."""

    transient = True


class HostTimedOut(HostError):
    """The host accepted but did not finish within the call's deadline: worth retrying."""

    transient = True


class HostAuthRefused(HostError):
    """The host refused jitad's credentials (or its certificate did not validate)."""


class HostScriptFailed(HostError):
    """The script ran and failed (non-zero exit, WS-Man fault, unreadable output)."""

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code


class HostMisconfigured(HostError):
    """jitad's own settings for this host are unusable (no credentials, Basic over HTTP, ...)."""
