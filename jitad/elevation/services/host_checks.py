"""What the server itself says: is a grant's right there, and is it gone after revocation?

A membership in AD is not yet an admin right on a server: the server's local
Administrators group must contain the JIT group (normally through GPO). These checks
read that group over WinRM (jitad/hosts/) and combine it with AD (jitad/directory/).
They hold no database transaction and change no rows; callers record the outcome.
"""
from dataclasses import dataclass, field

from django.conf import settings

from jitad import directory, hosts

from ..models import Target


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``ok``, what was found, and the host error if there was one."""

    ok: bool
    detail: str
    error: Exception | None = None  # a HostError or DirectoryError (each says whether it is transient)

    @property
    def worth_retrying(self) -> bool:
        """A mismatch (GPO not applied yet) or a transient host error may clear; a refused login won't."""
        return not self.ok and (self.error is None or getattr(self.error, "transient", False))


def host_for(target: Target) -> hosts.Host:
    """A WinRM connection to the target's server, with its transport, credential profile and host name (Kerberos)."""
    return hosts.Host(hosts.config_for(url=target.winrm_url, transport=target.winrm_transport,
                                       profile=target.winrm_profile, hostname=target.hostname))


def grant_right_verdict(*, target: Target, group_dn: str, group_sid: str, user_in_group: bool) -> Verdict:
    """Verify a grant: the user is in the JIT group in AD, and the JIT group is a local admin of the server."""
    if not user_in_group:
        return Verdict(False, f"the user is not a member of {group_dn} in AD after the add")
    try:
        with host_for(target) as h:
            members = h.local_admins()
    except hosts.HostError as e:
        return Verdict(False, f"{target.name}: {e}", e)
    if any(m.sid == group_sid for m in members):
        return Verdict(True, f"{target.name}: the JIT group ({group_sid}) is in local Administrators")
    # The JIT group may sit inside a domain group that is there (e.g. a "Server admins" group).
    names = {m.sid: m.name for m in members}
    try:
        with directory.session() as d:
            via = d.groups_containing(group_dn, set(names) - {group_sid})
    except directory.DirectoryError as e:
        return Verdict(False, f"{target.name}: could not ask AD about nested groups: {e}", e)
    if via:
        through = ", ".join(sorted(names[s] for s in via))
        return Verdict(True, f"{target.name}: the JIT group is in local Administrators through {through}")
    return Verdict(
        False,
        f"{target.name}: the JIT group {group_dn} ({group_sid}) is not in local Administrators "
        f"({len(members)} member(s)); is the GPO that adds it linked and applied?",
    )


@dataclass(frozen=True)
class RevocationCheck:
    """Per SID: how the user is still admin on the server, if at all, what ending sessions did, and
    whose logon sessions remain after it (``sessions_remain``: a failure, retried by the caller)."""

    still_admin_through: dict[str, list[str]]
    sessions_ended: dict[str, hosts.SessionsEnded]
    sessions_remain: dict[str, hosts.HostSessionsRemain] = field(default_factory=dict)


def revocation_check(*, target: Target, d: directory.Directory, users: dict[str, str],
                     end_sessions_for: set[str]) -> RevocationCheck:
    """For users (SID → DN) whose grant was removed: are they still effective local admins?

    Effective membership: the user's own SID in local Administrators, or a domain group
    there that contains the user (nested). Every SID in ``end_sessions_for`` (the users', or
    an ephemeral account's that is not in ``users``) has its logon sessions on the server
    ended, its Kerberos tickets there purged, and is confirmed to have no logon session
    left, so no token keeps the right. A SID whose logon session remains does not stop the
    others: it is returned in ``sessions_remain``.
    """
    with host_for(target) as h:
        members = h.local_admins()
        sids = {m.sid for m in members}
        names = {m.sid: m.name for m in members}
        through = {}
        for sid, dn in users.items():
            paths = [names[sid]] if sid in sids else []
            if dn:
                paths += sorted(names[g] for g in d.groups_containing(dn, sids - {sid}))
            if paths:
                through[sid] = paths
        ended, remain = {}, {}
        for sid in sorted(end_sessions_for):
            try:
                ended[sid] = h.end_sessions(sid)
            except hosts.HostSessionsRemain as e:
                ended[sid], remain[sid] = e.ended, e
    return RevocationCheck(still_admin_through=through, sessions_ended=ended, sessions_remain=remain)


def allowed_admin(sid: str, patterns) -> bool:
    """True if ``sid`` matches an allow-list entry: a SID, or ``*-<RID>`` for that RID anywhere."""
    for p in patterns:
        p = str(p).strip()
        if p.startswith("*-") and sid.endswith(p[1:]):
            return True
        if p.upper() == sid.upper():
            return True
    return False


def allowed_admin_patterns(target: Target) -> list[str]:
    return list(settings.JITAD_HOST_ALLOWED_ADMINS) + list(target.allowed_admins or [])
