"""The change feed of :class:`~jitad.directory.client.Directory`: which JIT groups' members changed since a cookie.

DirSync (LDAP_SERVER_DIRSYNC_OID, MS-ADTS 3.1.1.3.4.1.3): a search of the whole naming
context for groups whose ``member`` changed after the cookie, answered with the changed
groups and a new cookie. The cookie is the DC's own replication state (its USNs and
invocation ID): it means something only to the DC that issued it, so the caller keeps one
per DC (:attr:`ChangeFeed.dc`) and never shows a DC another one's cookie.

Flags sent: LDAP_DIRSYNC_OBJECT_SECURITY, so the bind account needs no "Replicating Directory
Changes" right (the DC returns what the account may read: the JIT groups, which jitad reads
anyway), and LDAP_DIRSYNC_INCREMENTAL_VALUES, so a change to a group of thousands carries
only the values that changed.
"""
from dataclasses import dataclass

from ldap3 import SUBTREE
from ldap3.protocol.microsoft import dir_sync_control

from .errors import DirectoryRejected, DirectoryUnavailable, translate

DIRSYNC_OID = "1.2.840.113556.1.4.841"
_PAGE_BYTES = 1024 * 1024  # the most a DC puts in one answer; more_results says when there is more
_MAX_PAGES = 10_000  # a DC that says "more" for ever is a DC that misbehaves: stop, as for a timeout


@dataclass(frozen=True)
class GroupChanges:
    """What one read of the change feed found.

    ``restarted``: no cookie was given, or the DC refused it; ``cookie`` is then a fresh one
    taken from a full read of the directory, and ``groups`` is empty because that read is not
    a list of changes: the caller treats every group it manages as changed, once.
    """

    dc: str
    cookie: bytes
    groups: tuple[str, ...] = ()
    restarted: bool = False


def _may_add(entry: dict) -> bool:
    """False only when the entry shows members removed and none added: a removal never lets anyone in.

    With incremental values the DC sends added values as ``member;range=1-1`` and removed ones as
    ``member;range=0-0``; a DC that sends the whole ``member`` (or nothing about it) counts as adding.
    Jitad's own revocations (a mass expiry empties a hundred groups) then cost the watch nothing.
    """
    added = removed = False
    for name, values in (entry.get("raw_attributes") or {}).items():
        name = name.lower()
        if not values or not name.startswith("member"):
            continue
        if name.startswith("member;range=0-"):
            removed = True
        else:
            added = True
    return added or not removed


class ChangeFeed:
    """Groups changed since a cookie (mixed into Directory)."""

    @property
    def dc(self) -> str:
        """The DC this connection is bound to, as the DC names itself (its NTDS Settings DN, from the root DSE)."""
        info = self._conn.server.info
        names = (info.other.get("dsServiceName") or []) if info is not None else []
        return str(names[0]) if names else self.url

    def _naming_context(self) -> str:
        """The naming context holding the JIT OU: DirSync reads only from the head of one."""
        from .managed import jit_ous, under_jit_ou  # managed.py builds on the client, which mixes this in

        info = self._conn.server.info
        contexts = [str(c) for c in (info.naming_contexts or [])] if info is not None else []
        ous = jit_ous(self.config.jit_ou)
        holding = [nc for nc in contexts if ous and all(under_jit_ou(ou, (nc,)) for ou in ous)]
        if holding:
            return max(holding, key=len)
        default = (info.other.get("defaultNamingContext") or []) if info is not None else []
        return str(default[0]) if default else self.config.base_dn

    def groups_changed(self, cookie: bytes | None) -> GroupChanges:
        """The groups under the JIT OU whose members changed since ``cookie``, and the cookie to pass next.

        A group whose only changes were removals is left out (nobody can have been let in).
        ``cookie`` must be one this same DC issued (:attr:`dc`). None, or a cookie the DC refuses
        (it answers an error with it and none without it), starts over: see :class:`GroupChanges`.
        Groups outside the JIT OU are left out. Errors are the seam's (DirectoryUnavailable when
        the DC does not answer; DirectoryRejected when it refuses DirSync itself).
        """
        if cookie:
            try:
                dns, new = self._dirsync(cookie)
            except DirectoryUnavailable:
                raise
            except DirectoryRejected:  # refused with the cookie: the read without it says whether DirSync works at all
                pass
            else:
                from .managed import jit_ous, under_jit_ou

                ous = jit_ous(self.config.jit_ou)
                mine = tuple(dict.fromkeys(dn for dn in dns if under_jit_ou(dn, ous)))
                return GroupChanges(dc=self.dc, cookie=new, groups=mine)
        _dns, new = self._dirsync(b"")
        return GroupChanges(dc=self.dc, cookie=new, restarted=True)

    def _dirsync(self, cookie: bytes) -> tuple[list[str], bytes]:
        """Every page of one DirSync read from ``cookie`` (b"" for all): the DNs of the groups returned, and the last cookie."""
        base = self._naming_context()
        dns: list[str] = []
        # ldap3's auto_range would read "member;range=1-1" (DirSync's added values) as the first
        # slice of a long attribute and fetch the "rest" of it from each group: a search per group for nothing.
        auto_range, self._conn.auto_range = self._conn.auto_range, False
        try:
            for _page in range(_MAX_PAGES):
                control = dir_sync_control(criticality=True, object_security=True, ancestors_first=False,
                                           public_data_only=False, incremental_values=True, max_length=_PAGE_BYTES,
                                           cookie=cookie or None)
                with translate("read the directory's changes (DirSync)"):
                    self._conn.search(base, "(objectClass=group)", SUBTREE, attributes=["member"], controls=[control])
                dns += [r["dn"] for r in self._conn.response if r.get("type") == "searchResEntry" and _may_add(r)]
                value = (self._conn.result.get("controls") or {}).get(DIRSYNC_OID, {}).get("value")
                if not value:
                    raise DirectoryRejected("read the directory's changes (DirSync): the DC answered without a DirSync cookie")
                cookie = bytes(value["cookie"])
                if not value["more_results"]:
                    return dns, cookie
        finally:
            self._conn.auto_range = auto_range
        raise DirectoryUnavailable(f"read the directory's changes (DirSync): still more after {_MAX_PAGES} pages")
