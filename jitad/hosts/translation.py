"""pywinrm's, requests' and GSSAPI's exceptions as the seam's HostError subclasses, chained (``from``)."""
import re

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WSManFaultError,
    WinRMTransportError,
)

from jitad import kerberos

from .errors import HostAuthRefused, HostError, HostMisconfigured, HostScriptFailed, HostTimedOut, HostUnreachable
from .transport import KerberosExchangeError


class translated:
    """Turn pywinrm/requests exceptions into HostError subclasses, chained."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, exc_type, e, tb):
        if e is None or isinstance(e, HostError):
            return False
        url = self.url
        if isinstance(e, InvalidCredentialsError):
            raise HostAuthRefused(f"{url} refused jitad's credentials") from e
        if isinstance(e, KerberosExchangeError):  # jitad's side could not make a ticket for the server
            reason = _kerberos_reason(e)
            if kerberos.transient_code(_kerberos_minor(e)):
                raise HostUnreachable(f"{url}: Kerberos: {reason}") from e
            raise HostAuthRefused(f"{url}: Kerberos: {reason}") from e
        if isinstance(e, requests.exceptions.TooManyRedirects):
            raise HostScriptFailed(f"{url} answered with a redirect; jitad never follows one") from e
        if isinstance(e, requests.exceptions.SSLError):
            raise HostAuthRefused(f"{url}: TLS failed (certificate not trusted or wrong name): {_short(e)}") from e
        if isinstance(e, requests.exceptions.ConnectTimeout):
            raise HostUnreachable(f"{url}: connection timed out") from e
        if isinstance(e, requests.exceptions.ReadTimeout):
            raise HostTimedOut(f"{url}: no answer within the read timeout") from e
        if isinstance(e, requests.exceptions.ConnectionError):
            raise HostUnreachable(f"{url}: {_connection_reason(e)}") from e
        if isinstance(e, WSManFaultError):
            raise HostScriptFailed(f"{url}: WS-Management fault: {e.reason}") from e
        if isinstance(e, WinRMTransportError):
            if e.code in (502, 503, 504):
                raise HostUnreachable(f"{url}: HTTP {e.code}") from e
            raise HostScriptFailed(f"{url}: HTTP {e.code}") from e
        if isinstance(e, WinRMError):
            raise HostMisconfigured(f"{url}: {e}") from e
        if isinstance(e, requests.exceptions.RequestException):
            raise HostUnreachable(f"{url}: {type(e).__name__}") from e
        if isinstance(e, OSError):  # e.g. a CA bundle or client certificate file that cannot be read
            raise HostMisconfigured(f"{url}: {type(e).__name__}: {_short(e)}") from e
        # Anything else from pywinrm or its parsers (ParseError, KeyError, AttributeError on a
        # reply that is not WS-Man): the answer was unusable. Never let it escape the seam.
        raise HostScriptFailed(f"{url}: unusable WS-Management reply ({type(e).__name__})") from e


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def _gss_status(e: Exception) -> list[tuple[str, int]]:
    """pykerberos' (text, code) pairs, major then minor, behind pywinrm's KerberosExchangeError: its requests_kerberos
    raises that while handling pykerberos' GSSError, and words it with the pairs' repr (quoted either way)."""
    cause = e.__cause__ or e.__context__
    args = getattr(cause, "args", ())
    if args and all(isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], int) for a in args):
        return [(str(text), code) for text, code in args]
    return [(text or other, int(code))
            for text, other, code in re.findall(r"""\((?:'([^']*)'|"([^"]*)"), (-?\d+)\)""", str(e))]


def _kerberos_reason(e: Exception) -> str:
    """GSSAPI's own words for the failure ("Server not found in Kerberos database", "Cannot contact any KDC ...")."""
    status = _gss_status(e)
    reason = status[-1][0] if status and status[-1][0] else _short(e)
    if "not found in Kerberos database" in reason:
        reason += " (is the server's HTTP/<host name> SPN registered on its account?)"
    return reason


def _kerberos_minor(e: Exception) -> int | None:
    """The Kerberos error code (GSSAPI's minor status) behind pywinrm's KerberosExchangeError, if it carries one."""
    status = _gss_status(e)
    return status[-1][1] if len(status) > 1 else None


def _connection_reason(e: Exception) -> str:
    text = str(e)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name does not resolve"),
        ("No route to host", "no route to host"),
        ("Connection aborted", "connection dropped"),
        ("RemoteDisconnected", "connection dropped"),
        ("Connection reset", "connection reset"),
    ):
        if needle in text:
            return reason
    return "connection failed"
