"""The host seam: the only code in jitad that imports pywinrm.

    with hosts.Host(hosts.config_for(url=target.winrm_url, transport="kerberos", hostname=target.hostname)) as h:
        members = h.local_admins()        # [LocalMember(sid, path, cls)]
        h.end_sessions(user_sid)          # SessionsEnded; HostSessionsRemain if a logon session remains
        h.security_events(sids=[user_sid], start=granted_at, end=now)   # SecurityEvents
"""
from .client import ADMINISTRATORS_SID, Host, LocalMember
from .script_io import encoded_command, script_text
from .sessions import RemainingLogon, SessionsEnded
from .events import SecurityEvent, SecurityEvents
from .sids import is_account_sid, is_sid
from .config import TRANSPORTS, HostConfig, config_for
from .reach import endpoint_reach
from .errors import (
    HostAuthRefused,
    HostError,
    HostMisconfigured,
    HostScriptFailed,
    HostSessionsRemain,
    HostTimedOut,
    HostUnreachable,
)

__all__ = [
    "ADMINISTRATORS_SID",
    "TRANSPORTS",
    "Host",
    "HostAuthRefused",
    "HostConfig",
    "HostError",
    "HostMisconfigured",
    "HostScriptFailed",
    "HostSessionsRemain",
    "HostTimedOut",
    "HostUnreachable",
    "LocalMember",
    "RemainingLogon",
    "SecurityEvent",
    "SecurityEvents",
    "SessionsEnded",
    "config_for",
    "endpoint_reach",
    "encoded_command",
    "is_account_sid",
    "is_sid",
    "script_text",
]
