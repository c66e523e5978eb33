"""Run jitad's constant PowerShell scripts on a Windows host over WinRM and read their JSON.

The rules this module keeps:

* Scripts are files shipped in ``jitad/hosts/scripts/``; the command line is built from
  the script's text alone. Input is data: validated here, JSON, base64, handed over in
  the shell's environment (``JITAD_INPUT``), never spliced into PowerShell.
* Output is one ``JITAD:<base64 JSON>`` line, so no code page can mangle it; the exit
  code is checked.
* Every call has a deadline. pywinrm retries a Receive that hit the operation timeout
  forever; here the loop stops at the deadline, and each HTTP request's read timeout
  shrinks to what is left of it.
* pywinrm's and requests' errors become HostError subclasses, raised ``from`` the original.
"""
import base64
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

try:  # pywinrm's Kerberos (its vendored requests_kerberos over pykerberos)
    import winrm.transport as _winrm_transport
    from winrm.vendor.requests_kerberos import HTTPKerberosAuth
    from winrm.vendor.requests_kerberos.exceptions import KerberosExchangeError

    class _ChannelBoundKerberosAuth(HTTPKerberosAuth):
        """pywinrm's Kerberos auth, waiting for the server's 401 before it sends a ticket.

        pywinrm asks for the ticket to go with the first request (preemptive), before any TLS
        certificate has been seen, so over HTTPS the ticket would carry no channel binding. Sent
        after the 401, it is bound to the TLS channel it travels on (tls-server-end-point), as a
        server with Extended Protection (CbtHardeningLevel Strict) requires; a relayed ticket is
        refused. One more round trip per connection, over HTTP as well.
        """

        def __init__(self, *args, **kwargs):
            kwargs["force_preemptive"] = False
            super().__init__(*args, **kwargs)

    _winrm_transport.HTTPKerberosAuth = _ChannelBoundKerberosAuth  # pywinrm builds its auth by this name
except ImportError:  # pragma: no cover - pykerberos not installed: a kerberos target fails in pywinrm instead
    class KerberosExchangeError(Exception):
        pass

from jitad import kerberos, metrics

from .config import HostConfig
from .errors import (
    HostAuthRefused,
    HostError,
    HostMisconfigured,
    HostScriptFailed,
    HostSessionsRemain,
    HostTimedOut,
    HostUnreachable,
)
from .events import SecurityEvents, events_input, events_result
from .sessions import SessionsEnded, sessions_result
from .sids import is_account_sid, is_sid

log = logging.getLogger(__name__)

ADMINISTRATORS_SID = "S-1-5-32-544"
MARKER = "JITAD:"
POWERSHELL = "powershell.exe"
POWERSHELL_ARGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand")
# What is left of the deadline below which starting another request is pointless.
_MIN_BUDGET = 1.5
_CLEANUP_SECONDS = 3.0


@cache
def script_text(name: str) -> str:
    """The text of a shipped script (``local_admins`` → scripts/local_admins.ps1)."""
    if not re.fullmatch(r"[a-z_]+", name):
        raise HostError(f"no script named {name!r}")
    try:
        return resources.files(__package__).joinpath("scripts", f"{name}.ps1").read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise HostError(f"no script named {name!r}") from e


def encoded_command(name: str) -> str:
    """The -EncodedCommand argument for a script: base64 of its UTF-16-LE text."""
    return base64.b64encode(script_text(name).encode("utf-16-le")).decode("ascii")


@dataclass(frozen=True)
class LocalMember:
    """One member of a host's local Administrators group."""

    sid: str
    path: str
    cls: str

    @property
    def orphaned(self) -> bool:
        """The SID no longer resolves (a deleted account): ADSI gives its path as the bare SID."""
        return self.path.rstrip("/").rsplit("/", 1)[-1].upper() == self.sid.upper()

    @property
    def name(self) -> str:
        """DOMAIN\\name from a WinNT path (WinNT://DOMAIN/name or WinNT://DOMAIN/HOST/name)."""
        parts = [p for p in self.path.removeprefix("WinNT://").split("/") if p]
        if self.orphaned or not parts:
            return self.sid
        return "\\".join(parts[-2:]) if len(parts) >= 2 else parts[0]


class Host:
    """A WinRM connection to one host; ``with Host(config) as h: h.local_admins()``."""

    def __init__(self, config: HostConfig):
        config.check()
        self.config = config
        self._protocol: Protocol | None = None

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._protocol is not None:
            try:
                self._protocol.transport.close_session()
            finally:
                self._protocol = None

    # -- verbs -----------------------------------------------------------------------
    def local_admins(self) -> list[LocalMember]:
        """Members of local Administrators (S-1-5-32-544), orphaned SIDs included."""
        result = self.run_script("local_admins")
        group = result.get("group") or {}
        members = result.get("members")
        if group.get("sid") != ADMINISTRATORS_SID or not isinstance(members, list):
            raise HostScriptFailed("local_admins returned no Administrators group")
        out = []
        for m in members:
            if not isinstance(m, dict) or not is_sid(m.get("sid")):
                raise HostScriptFailed(f"local_admins returned a member without a SID: {str(m)[:120]!r}")
            out.append(LocalMember(sid=m["sid"], path=str(m.get("path") or ""), cls=str(m.get("class") or "")))
        return out

    def end_sessions(self, sid: str) -> SessionsEnded:
        """Log off every session of the user ``sid`` on this host, stop their processes, purge their
        Kerberos tickets there, and confirm no logon session of theirs still runs a process.

        A logoff that fails is HostScriptFailed; a logon session that remains is HostSessionsRemain
        (transient: logoff is asynchronous), carrying what was done.
        """
        if not is_account_sid(sid):
            raise HostError(f"refusing to send {sid!r} to a host: not a SID of a person's account")
        ended = sessions_result(self.run_script("end_sessions", {"sid": sid}), sid)
        if ended.remaining:
            raise HostSessionsRemain(
                f"{len(ended.remaining)} logon session(s) of {sid} remain after logoff: "
                + ", ".join(str(r) for r in ended.remaining), ended=ended)
        return ended

    def security_events(self, *, sids, start: datetime, end: datetime, max_events: int = 1000) -> SecurityEvents:
        """The Security log events of ``sids`` between ``start`` and ``end`` (at most ``max_events``).

        Logons (4624, 4672), logoffs (4634, 4647), processes (4688), account and local group
        changes (4720, 4726, 4732, 4733) of these users, and every clearing of the log (1102).
        """
        data = events_input(sids=sids, start=start, end=end, max_events=max_events)
        return events_result(self.run_script("security_events", data), data["sids"], max_events)

    # -- running a script ------------------------------------------------------------
    def run_script(self, name: str, data: dict | None = None) -> dict:
        """Run a shipped script with ``data`` as its input; return its JSON result."""
        deadline = time.monotonic() + self.config.deadline
        env = {"JITAD_INPUT": base64.b64encode(json.dumps(data).encode()).decode("ascii")} if data is not None else None
        with metrics.timed(metrics.winrm_call_seconds, metrics.winrm_call_errors, script=name):
            try:
                stdout, stderr, code = self._execute(name, env, deadline)
            except HostError:
                self.close()  # a connection in an unknown state is never reused
                raise
            return _parse_result(name, stdout, stderr, code)

    def _protocol_for_call(self) -> Protocol:
        if self._protocol is None:
            c = self.config
            if c.transport == "kerberos":
                try:
                    kerberos.prepare()
                    kerberos.get_ticket("HTTP", c.kerberos_host or urlsplit(c.url).hostname)
                except kerberos.KerberosMisconfigured as e:
                    raise HostMisconfigured(f"WinRM over Kerberos to {c.url}: {e}") from e
                except kerberos.KerberosNoTicket as e:
                    error = HostUnreachable if e.transient else HostAuthRefused
                    raise error(f"{c.url}: Kerberos: {e}") from e
            try:
                self._protocol = Protocol(
                    endpoint=c.url,
                    transport=c.transport,
                    username=c.username or None,
                    password=c.password or None,
                    ca_trust_path=c.ca_bundle or None,
                    cert_pem=c.cert_pem or None,
                    cert_key_pem=c.cert_key_pem or None,
                    server_cert_validation="validate",
                    # Over HTTP, NTLM/Kerberos must encrypt every message; over HTTPS, TLS does
                    # (and sealing as well when the settings ask for it).
                    message_encryption="auto" if c.https and c.message_encryption == "auto" else "always",
                    kerberos_hostname_override=c.kerberos_host or None,
                    read_timeout_sec=max(2, int(c.read_timeout)),
                    operation_timeout_sec=max(1, int(c.operation_timeout)),
                    proxy=None,  # never a proxy from the environment: jitad talks to its hosts directly
                )
            except (WinRMError, ValueError) as e:
                raise HostMisconfigured(f"WinRM settings for {c.url}: {e}") from e
            _no_redirects(self._protocol.transport)
        return self._protocol

    def _budget(self, deadline: float) -> Protocol:
        """Fit the next request's timeouts into what is left of the deadline."""
        left = deadline - time.monotonic()
        if left < _MIN_BUDGET:
            raise HostTimedOut(f"{self.config.url} did not finish within {self.config.deadline:g} s")
        p = self._protocol_for_call()
        read = min(self.config.read_timeout, left)
        p.operation_timeout_sec = max(1, min(int(self.config.operation_timeout), int(read) - 1))
        p.transport.read_timeout_sec = (min(self.config.connect_timeout, read), read)
        return p

    def _execute(self, name: str, env: dict | None, deadline: float) -> tuple[bytes, bytes, int]:
        url = self.config.url
        shell_id = command_id = None
        out, err = [], []
        try:
            with _translated(url):
                shell_id = self._budget(deadline).open_shell(env_vars=env, codepage=65001, noprofile=True)
                # Not through cmd.exe: its 8,191-character line limit is close to the scripts' size.
                command_id = self._budget(deadline).run_command(
                    shell_id, POWERSHELL, [*POWERSHELL_ARGS, encoded_command(name)], skip_cmd_shell=True
                )
                while True:
                    p = self._budget(deadline)
                    try:
                        o, e, code, done = p.get_command_output_raw(shell_id, command_id)
                    except WinRMOperationTimeoutError:
                        continue  # still running; the deadline bounds the wait
                    out.append(o)
                    err.append(e)
                    if done:
                        break
        except HostError:
            if shell_id is not None and self._protocol is not None:
                self._cleanup(shell_id, command_id)
            raise
        self._cleanup(shell_id, command_id)
        return b"".join(out), b"".join(err), code

    def _cleanup(self, shell_id: str, command_id: str | None) -> None:
        """Signal the command and delete the shell, briefly and quietly: the result is already known."""
        deadline = time.monotonic() + _CLEANUP_SECONDS
        try:
            with _translated(self.config.url):
                if command_id is not None:
                    self._budget(deadline).cleanup_command(shell_id, command_id)
                self._budget(deadline).close_shell(shell_id, close_session=False)
        except HostError as e:
            log.info("could not close the WinRM shell on %s: %s", self.config.url, e)


def _no_redirects(transport) -> None:
    """Never follow a redirect (it would hand jitad's logon to another host) or read the environment.

    pywinrm sends every request, the encryption handshake included, through this one method.
    """
    send = transport._send_message_request

    def guarded(session, prepared_request):
        session.max_redirects = 0  # a 3xx raises TooManyRedirects instead of being followed
        session.trust_env = False
        return send(session, prepared_request)

    transport._send_message_request = guarded
    _sealed_replies_only(transport)


def _sealed_replies_only(transport) -> None:
    """Once messages are sealed, refuse a reply that is not.

    pywinrm unseals a reply only when its Content-Type names the sealing protocol and hands any
    other body back as it came: someone on the path who let the logon through to the real host
    could then answer the commands in plain text (a forged "is in Administrators", a forged "no
    longer admin"). A sealed exchange must stay sealed both ways.
    """
    read = transport._get_message_response_text

    def checked(response):
        encryption = transport.encryption
        if encryption is not None:
            kind = response.headers.get("Content-Type", "")
            if f'protocol="{encryption.protocol_string.decode()}"' not in kind:
                raise HostAuthRefused(f"a reply from {transport.endpoint} was not sealed (Content-Type {kind[:80]!r}) "
                                 "although the messages are: refused, it may not come from the host")
        return read(response)

    transport._get_message_response_text = checked


class _translated:
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


_CLIXML_ERROR = re.compile(r'<S S="Error">(.*?)</S>', re.S)


def _stderr_summary(stderr: bytes) -> str:
    """The first readable error line of stderr (PowerShell writes CLIXML there)."""
    text = stderr.decode("utf-8", "replace")
    if text.lstrip().startswith("#< CLIXML"):
        text = "".join(_CLIXML_ERROR.findall(text)).replace("_x000D__x000A_", " ")
    text = " ".join(text.split())
    return text[:300] or "(no error output)"


def _parse_result(name: str, stdout: bytes, stderr: bytes, code: int) -> dict:
    """The script's JSON result; a non-zero exit or an unreadable result is HostScriptFailed."""
    text = stdout.decode("utf-8", "replace")
    lines = [ln.strip()[ln.strip().index(MARKER):] for ln in text.splitlines() if MARKER in ln]
    result = None
    if lines:
        try:
            result = json.loads(base64.b64decode(lines[-1][len(MARKER):], validate=True).decode("utf-8"))
        except ValueError as e:
            raise HostScriptFailed(f"{name}: unreadable result ({e})", exit_code=code) from e
    if code != 0:
        detail = result.get("error") if isinstance(result, dict) and result.get("error") else _stderr_summary(stderr)
        raise HostScriptFailed(f"{name} exited with {code}: {str(detail)[:300]}", exit_code=code)
    if not isinstance(result, dict):
        raise HostScriptFailed(f"{name} printed no result", exit_code=code)
    return result
