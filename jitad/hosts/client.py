"""Run jitad's constant PowerShell scripts on a Windows host over WinRM and read their JSON.

The rules this module keeps:

* Scripts are files shipped in ``jitad/hosts/scripts/``, run by their constant command line
  (script_io.py). Input is data: validated here, JSON, base64, handed over in the shell's
  environment (``JITAD_INPUT``), never spliced into PowerShell. Output is one result line,
  read by script_io.py; the exit code is checked.
* The connection, its logon and its guards (no redirect, no proxy, sealed replies only) are
  transport.py's.
* Every call has a deadline. pywinrm retries a Receive that hit the operation timeout
  forever; here the loop stops at the deadline, and each HTTP request's read timeout
  shrinks to what is left of it.
* pywinrm's and requests' errors become HostError subclasses, raised ``from`` the original
  (translation.py).
"""
import base64
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from winrm.exceptions import WinRMOperationTimeoutError
from winrm.protocol import Protocol

from jitad import metrics

from .config import HostConfig
from .errors import HostError, HostScriptFailed, HostSessionsRemain, HostTimedOut
from .events import SecurityEvents, events_input, events_result
from .script_io import POWERSHELL, POWERSHELL_ARGS, encoded_command, parse_result
from .sessions import SessionsEnded, sessions_result
from .sids import is_account_sid, is_sid
from .translation import translated
from .transport import protocol_open

log = logging.getLogger(__name__)

ADMINISTRATORS_SID = "S-1-5-32-544"
# What is left of the deadline below which starting another request is pointless.
_MIN_BUDGET = 1.5
_CLEANUP_SECONDS = 3.0


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
            return parse_result(name, stdout, stderr, code)

    def _protocol_for_call(self) -> Protocol:
        if self._protocol is None:
            self._protocol = protocol_open(self.config)
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
            with translated(url):
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
            with translated(self.config.url):
                if command_id is not None:
                    self._budget(deadline).cleanup_command(shell_id, command_id)
                self._budget(deadline).close_shell(shell_id, close_session=False)
        except HostError as e:
            log.info("could not close the WinRM shell on %s: %s", self.config.url, e)


