"""One bound LDAPS session to a domain controller, and the verbs jitad needs from it.

The verbs live beside this module, by what they touch: users.py (accounts), groups.py
(reads of groups and members), people.py (the people in a group, at any depth), members.py
(membership changes, refused outside what jitad owns), changes.py (which JIT groups changed since a
DirSync cookie), ephemeral.py (session-only accounts
under the JIT OU), provisioning.py (demo and test estates). Binding and the per-thread session are in
connection.py; DN and filter escaping in dn.py.
"""
import logging

from ldap3 import BASE, SUBTREE, Connection

from .changes import ChangeFeed
from .config import DirectoryConfig
from .errors import DirectoryError, translate
from .ephemeral import EphemeralVerbs
from .groups import GroupReads
from .members import MemberChanges
from .people import PeopleReads
from .provisioning import Provisioning
from .users import UserVerbs

log = logging.getLogger(__name__)


class Directory(UserVerbs, GroupReads, PeopleReads, MemberChanges, Provisioning, EphemeralVerbs, ChangeFeed):
    """A bound connection to one DC. Use :func:`~jitad.directory.connection.connect` to get one; close it when done."""

    def __init__(self, conn: Connection, config: DirectoryConfig, url: str):
        self._conn = conn
        self.config = config
        self.url = url
        self._pam_ttl: bool | None = None

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        try:
            self._conn.unbind()
        except Exception:  # noqa: BLE001 - closing a dead socket must never mask the real error
            log.debug("unbind failed", exc_info=True)

    def alive(self) -> bool:
        """True if the DC still answers on this connection (a root DSE read)."""
        try:
            with translate("check connection"):
                self._conn.search("", "(objectClass=*)", BASE, attributes=["currentTime"])
            return True
        except DirectoryError:
            return False

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the one search every verb reads through ---------------------------------------
    def _search(self, base: str, filt: str, scope=SUBTREE, attributes=None, operation="search") -> list[dict]:
        with translate(operation):
            self._conn.search(base, filt, scope, attributes=attributes or [])
        return [r for r in self._conn.response if r.get("type") == "searchResEntry"]
