"""What "runs" when a command arrives: the product's PowerShell scripts, by contract.

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
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

SCRIPTS_DIR = Path(__file__).resolve().parents[3] / "jitad" / "hosts" / "scripts"
SCRIPT_NAMES = ("local_admins", "end_sessions", "security_events")
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


def run_end_sessions(env: dict[str, str], sessions: dict[str, list[int]], logons: dict[str, list[dict]],
                     *, survive: bool = False) -> Outcome:
    """end_sessions.ps1: log off the SID's sessions, stop its other processes, purge the Kerberos
    tickets of its logon sessions, and report the logon sessions in which a process still runs.

    ``sessions`` maps a SID to the session ids its processes run in; 0 stands for a
    process outside any interactive session (network logon, scheduled task). Sessions > 0
    are logged off; the session-0 processes are the ones counted as stopped. The SID's
    entry is removed (mutates ``sessions``).

    ``logons`` maps a SID to its logon sessions as Win32_LoggedOnUser lists them: dicts with
    ``id`` (the LUID, an int), ``tickets`` (Kerberos tickets cached in it), optionally
    ``session`` (the session id its processes run in) and ``stale`` (ended, yet still listed:
    klist cannot purge it and no process runs in it). Each live one is purged (tickets set to
    0, counted); stale ones are not counted and never reported as remaining.

    ``survive`` (the host's "session_survives" mode): logoff.exe answers success but the
    processes keep running, so they are reported under ``remaining``: with the live logon
    session whose ``session`` they run in, or under logon id "" when none is listed.
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
    ids = [int(i) for i in (sessions.get(sid, []) if survive else sessions.pop(sid, []))]
    logged_off = sorted({i for i in ids if i > 0})
    stopped = 0 if survive else sum(1 for i in ids if i == 0)
    purged = 0
    live = [entry for entry in logons.get(sid, []) if not entry.get("stale")]
    for entry in live:
        entry["tickets"] = 0
        purged += 1
    remaining = []
    if survive:
        placed = 0
        for entry in live:
            n = sum(1 for i in ids if "session" in entry and i == int(entry["session"]))
            if n:
                remaining.append({"logon_id": f"0x{int(entry['id']):x}", "processes": n})
                placed += n
        if len(ids) > placed:
            remaining.append({"logon_id": "", "processes": len(ids) - placed})
    outcome.stdout = result_line({"sid": sid, "sessions": logged_off, "processes": stopped, "failed": [],
                                  "tickets_purged": purged, "remaining": remaining})
    return outcome


SECURITY_EVENT_IDS = (4624, 4634, 4647, 4672, 4688, 4720, 4726, 4732, 4733, 1102)
_ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z")


def _utc_time(value: Any) -> datetime | None:
    """An input time as security_events.ps1 reads it (None when it refuses it)."""
    text = _ps_string(value)
    if not _ISO_UTC.fullmatch(text):
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        at = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return at + timedelta(microseconds=int((fraction or "0").ljust(7, "0")[:7]) // 10)


def _event_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromisoformat(str(value)).astimezone(timezone.utc)


def run_security_events(env: dict[str, str], security_log: list[dict]) -> Outcome:
    """security_events.ps1: the events of some SIDs in a window, from the host's Security log.

    ``security_log`` holds event dicts: id, at (aware datetime or ISO text), record, and the
    EventData fields the script reads, by their Windows names or the output's: SubjectUserSid
    (subject_sid), TargetUserSid (target_user_sid), LogonType (logon_type), IpAddress
    (source), TargetLogonId / SubjectLogonId (logon_id), NewProcessName (process),
    MemberSid (member), TargetSid (target). "-" is Windows' empty value.
    """
    ok, value = decode_input(env)
    outcome = Outcome(exit_code=0, script="security_events")

    def refuse(message: str) -> Outcome:
        outcome.exit_code, outcome.stdout = 3, result_line({"error": message})
        return outcome

    if not ok:
        return refuse("input is not base64 JSON")
    value = value if isinstance(value, dict) else {}
    sids = value.get("sids")
    if not isinstance(sids, list) or not 1 <= len(sids) <= 10:
        return refuse("input sids is not a list of 1 to 10 SIDs")
    for s in sids:
        m = ACCOUNT_SID_PATTERN.fullmatch(s) if isinstance(s, str) else None
        if not m or int(m.group(1)) < 1000:
            return refuse("input sids holds what is not a person's account SID")
    start, end = _utc_time(value.get("start")), _utc_time(value.get("end"))
    if start is None or end is None or start >= end:
        return refuse("input start and end are not ISO UTC times with start before end")
    limit = value.get("max")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 5000:
        return refuse("input max is not an integer from 1 to 5000")

    def field(event: dict, *names: str) -> str:
        for name in names:
            if name in event:
                text = _ps_string(event[name])
                return "" if text == "-" else text
        return ""

    read = sorted((e for e in security_log
                   if int(e["id"]) in SECURITY_EVENT_IDS and start <= _event_time(e["at"]) <= end),
                  key=lambda e: (_event_time(e["at"]), int(e["record"])))[:limit + 1]
    truncated = len(read) > limit
    wanted = {s.upper() for s in sids}
    events = []
    for e in read[:limit]:
        sid = next((v for v in (field(e, "TargetUserSid", "target_user_sid"), field(e, "MemberSid", "member"),
                                field(e, "TargetSid", "target"), field(e, "SubjectUserSid", "subject_sid"))
                    if v and v.upper() in wanted), "")
        if not sid:
            if int(e["id"]) != 1102:
                continue
            sid = field(e, "SubjectUserSid", "subject_sid")
        logon_type = field(e, "LogonType", "logon_type")
        events.append({
            "id": int(e["id"]),
            "at": _event_time(e["at"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "record": int(e["record"]),
            "sid": sid,
            "logon_type": int(logon_type) if logon_type.isdigit() else None,
            "source": field(e, "IpAddress", "source"),
            "logon_id": field(e, "TargetLogonId", "logon_id") or field(e, "SubjectLogonId"),
            "process": field(e, "NewProcessName", "process"),
            "member": field(e, "MemberSid", "member"),
            "target": field(e, "TargetSid", "target"),
        })
    events.sort(key=lambda ev: (ev["at"], ev["record"]))
    outcome.stdout = result_line({"events": events, "truncated": truncated})
    return outcome


def malformed_result(name: str, body: dict | None = None) -> Outcome:
    """A script that exits 0 with a result line in no contract's shape (or the given one)."""
    body = body if body is not None else {"events": "not a list", "truncated": "maybe"}
    return Outcome(exit_code=0, stdout=result_line(body), script=name)


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
