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


class HostSessionsRemain(HostError):
    """The user's sessions were ended, but a logon session of theirs still runs a process.

    Transient: logoff is asynchronous and a session may end a little later, so the check is
    asked again; ``ended`` is what the call did (logoffs, tickets purged, what remains).
    """

    transient = True

    def __init__(self, message: str, *, ended):
        super().__init__(message)
        self.ended = ended
