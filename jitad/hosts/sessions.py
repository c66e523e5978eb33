"""The post-session contract of end_sessions.ps1: what an answer must be.

``sessions_result`` checks the script's answer field by field (HostScriptFailed for anything
outside the contract). Whether a remaining logon session is a failure is the caller's
business (client.py raises HostSessionsRemain); running the script over WinRM is client.py's.
"""
import re
from dataclasses import dataclass

from .errors import HostScriptFailed


@dataclass(frozen=True)
class RemainingLogon:
    """A logon session of the user still running processes after its sessions were ended."""

    logon_id: str  # "0x<hex LUID>", or "" for processes in no logon session listed for the user
    processes: int

    def __str__(self) -> str:
        return f"{'logon ' + self.logon_id if self.logon_id else 'outside any listed logon'} ({self.processes} process(es))"


@dataclass(frozen=True)
class SessionsEnded:
    """What ending a user's sessions on a host did; ``remaining`` is empty on success."""

    sid: str
    sessions: tuple[int, ...]
    processes: int
    tickets_purged: int = 0  # logon sessions whose Kerberos tickets were purged
    remaining: tuple[RemainingLogon, ...] = ()


_RESULT_KEYS = {"sid", "sessions", "processes", "failed", "tickets_purged", "remaining"}
_LOGON_ID = re.compile(r"(0x[0-9a-f]{1,16})?")


def sessions_result(result: dict, sid: str) -> SessionsEnded:
    """end_sessions' answer, held to its contract; anything else is HostScriptFailed."""

    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    def listed(value) -> list:  # PowerShell 5.1 may write a one-element array as its element
        return value if isinstance(value, list) else [value]

    def bad(what: str) -> HostScriptFailed:
        return HostScriptFailed(f"end_sessions returned {what}: {str(result)[:200]!r}")

    if set(result) != _RESULT_KEYS:
        raise bad("a result outside its contract")
    if result["sid"] != sid:
        raise HostScriptFailed("end_sessions answered for another SID")
    sessions, failed, remaining = listed(result["sessions"]), listed(result["failed"]), listed(result["remaining"])
    if not all(count(s) for s in sessions + failed) or not count(result["processes"]):
        raise bad("sessions or processes that are not counts")
    if not count(result["tickets_purged"]):
        raise bad("a tickets_purged that is not a count")
    logons = []
    for r in remaining:
        if not (isinstance(r, dict) and set(r) == {"logon_id", "processes"} and isinstance(r["logon_id"], str)
                and _LOGON_ID.fullmatch(r["logon_id"]) and count(r["processes"]) and r["processes"] > 0):
            raise bad("a remaining logon session outside its contract")
        logons.append(RemainingLogon(logon_id=r["logon_id"], processes=r["processes"]))
    if failed:
        raise HostScriptFailed(f"end_sessions could not log off session(s) {failed!r}")
    return SessionsEnded(sid=sid, sessions=tuple(sessions), processes=result["processes"],
                         tickets_purged=result["tickets_purged"], remaining=tuple(logons))
