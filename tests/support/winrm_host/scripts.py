"""What "runs" when a command arrives: the product's two PowerShell scripts, by contract.

A command line is accepted only when it is ``powershell.exe ... -EncodedCommand <b64>`` and
the decoded text equals one of jitad/hosts/scripts/*.ps1 exactly (read afresh each time,
the same way the client reads them). That script's CONTRACT block (input, stdout, exit
codes) is then carried out in Python against the host's in-memory state. Anything else
exits 1 with a message on stderr, as Windows does for a command it cannot run.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

SCRIPTS_DIR = Path(__file__).resolve().parents[3] / "jitad" / "hosts" / "scripts"
SCRIPT_NAMES = ("local_admins", "end_sessions")
ADMINISTRATORS_SID = "S-1-5-32-544"
# end_sessions.ps1 accepts only a person's account: S-1-5-21-<domain>-<RID of 1000 or more>.
ACCOUNT_SID_PATTERN = re.compile(r"S-1-5-21-[0-9]+-[0-9]+-[0-9]+-([0-9]+)")

# powershell.exe (5.1) parameters: the value-taking ones, the switches, and the documented aliases.
_VALUE_PARAMS = ("encodedcommand", "executionpolicy", "inputformat", "outputformat", "windowstyle", "version",
                 "psconsolefile", "configurationname", "command", "file", "encodedarguments")
_SWITCHES = ("nologo", "noprofile", "noninteractive", "noexit", "sta", "mta")
_ALIASES = {"e": "encodedcommand", "ec": "encodedcommand", "enc": "encodedcommand", "ep": "executionpolicy",
            "ex": "executionpolicy", "c": "command", "f": "file", "o": "outputformat", "of": "outputformat",
            "if": "inputformat", "w": "windowstyle", "v": "version", "nop": "noprofile", "noni": "noninteractive"}


class Call(NamedTuple):
    """One script run: its name and the decoded JITAD_INPUT (None when the shell had none)."""

    script: str
    input: Any


@dataclass
class Outcome:
    """The result of one command: what a finished process leaves behind."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    script: str | None = None  # which contract ran, if any


class Unsupported(Exception):
    """The command line is not one the test host can run."""


def script_text(name: str) -> str:
    return (SCRIPTS_DIR / f"{name}.ps1").read_text(encoding="utf-8")


def identify(command: str, arguments: str) -> str:
    """The script name a command line runs; raises Unsupported for anything else."""
    tokens = _split_command_line(f"{command} {arguments}".strip())
    if not tokens:
        raise Unsupported("empty command line")
    program = re.split(r"[\\/]", tokens[0])[-1].lower()
    if program not in ("powershell", "powershell.exe"):
        raise Unsupported(f"'{tokens[0]}' is not recognized as an internal or external command")
    params: dict[str, str] = {}
    rest = tokens[1:]
    i = 0
    while i < len(rest):
        token = rest[i]
        if token[:1] not in ("-", "/"):
            raise Unsupported(f"unexpected argument {token!r}")
        name = _param_name(token[1:])
        if name in _VALUE_PARAMS:
            if i + 1 >= len(rest):
                raise Unsupported(f"missing value for -{name}")
            params[name] = rest[i + 1]
            i += 2
        else:
            params[name] = ""
            i += 1
    for unsupported in ("command", "file", "encodedarguments", "configurationname", "psconsolefile"):
        if unsupported in params:
            raise Unsupported(f"-{unsupported} is not supported")
    if "encodedcommand" not in params:
        raise Unsupported("no -EncodedCommand")
    try:
        text = base64.b64decode(params["encodedcommand"], validate=True).decode("utf-16-le")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Unsupported("the value of -EncodedCommand is not base64 of UTF-16-LE text") from None
    text = text.removeprefix("\ufeff")
    for name in SCRIPT_NAMES:
        try:
            if text == script_text(name):
                return name
        except OSError:
            continue
    raise Unsupported("the encoded script is none of jitad/hosts/scripts/*.ps1")


def _param_name(given: str) -> str:
    lowered = given.lower()
    if lowered in _ALIASES:
        return _ALIASES[lowered]
    matches = [p for p in _VALUE_PARAMS + _SWITCHES if p.startswith(lowered)] if lowered else []
    if len(matches) != 1:
        raise Unsupported(f"unknown or ambiguous parameter -{given}")
    return matches[0]


def _split_command_line(line: str) -> list[str]:
    """Windows-style splitting, simplified: whitespace separates, double quotes group."""
    return [m.group(0).replace('"', "") for m in re.finditer(r'(?:"[^"]*"|[^\s"])+', line)]


def result_line(obj: dict) -> bytes:
    """The stdout line of the contract: ``JITAD:`` + base64(UTF-8 JSON) + CRLF."""
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b"JITAD:" + base64.b64encode(data) + b"\r\n"


def unsupported(command_line: str, reason: str) -> Outcome:
    message = f"{command_line[:200]}: {reason} (not supported by the WinRM test host)\r\n"
    return Outcome(exit_code=1, stderr=message.encode("utf-8"))


def run_local_admins(admins: list[dict], group_name: str) -> Outcome:
    """local_admins.ps1: the Administrators group (by SID) and its members."""
    members = [{"sid": str(m["sid"]), "path": str(m.get("path", "")), "class": str(m.get("class", ""))}
               for m in admins]
    body = {"group": {"sid": ADMINISTRATORS_SID, "name": group_name}, "members": members}
    return Outcome(exit_code=0, stdout=result_line(body), script="local_admins")


def decode_input(env: dict[str, str]) -> tuple[bool, Any]:
    """JITAD_INPUT as the script reads it: (decoded?, JSON value)."""
    raw = env.get("JITAD_INPUT", "")
    try:
        data = base64.b64decode("".join(raw.split()), validate=True)
        return True, json.loads(data.decode("utf-8", errors="replace"))
    except (binascii.Error, ValueError):
        return False, None


def run_end_sessions(env: dict[str, str], sessions: dict[str, list[int]]) -> Outcome:
    """end_sessions.ps1: log off the SID's sessions and stop its other processes.

    ``sessions`` maps a SID to the session ids its processes run in; 0 stands for a
    process outside any interactive session (network logon, scheduled task). Sessions > 0
    are logged off; the session-0 processes are the ones counted as stopped. The SID's
    entry is removed (mutates ``sessions``).
    """
    ok, value = decode_input(env)
    outcome = Outcome(exit_code=0, script="end_sessions")
    if not ok:
        outcome.exit_code, outcome.stdout = 3, result_line({"error": "input is not base64 JSON"})
        return outcome
    sid = _ps_string(value.get("sid") if isinstance(value, dict) else
                     [v.get("sid") for v in value if isinstance(v, dict)] if isinstance(value, list) else None)
    account = ACCOUNT_SID_PATTERN.fullmatch(sid)
    if not account or int(account.group(1)) < 1000:
        outcome.exit_code, outcome.stdout = 3, result_line({"error": "input sid is not a person's account SID"})
        return outcome
    ids = [int(i) for i in sessions.pop(sid, [])]
    logged_off = sorted({i for i in ids if i > 0})
    stopped = sum(1 for i in ids if i == 0)
    outcome.stdout = result_line({"sid": sid, "sessions": logged_off, "processes": stopped, "failed": []})
    return outcome


def script_error(name: str, message: str = "Access is denied.") -> Outcome:
    """The contract's failure answer: exit 2 with {"error": ...}."""
    return Outcome(exit_code=2, stdout=result_line({"error": message}), script=name)


def _ps_string(value: Any) -> str:
    """PowerShell's [string] cast, for the JSON values it can meet."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return " ".join(_ps_string(v) for v in value if v is not None)
    if isinstance(value, dict):
        return "@{" + "; ".join(f"{k}={_ps_string(v)}" for k, v in value.items()) + "}"
    return str(value)
