"""One bound LDAPS session to a domain controller, and the verbs jitad needs from it.

The verbs live beside this module, by what they touch: users.py (accounts), groups.py
(reads of groups and members), people.py (the people in a group, at any depth), members.py
(membership changes, refused outside what jitad owns), changes.py (which JIT groups changed since a
DirSync cookie), ephemeral.py (session-only accounts
under the JIT OU), provisioning.py (demo and test estates). Binding and the per-thread session are in
connection.py; DN and filter escaping in dn.py.
"""
import logging
from typing import Callable

from ldap3 import BASE, SUBTREE, Connection

from jitad import metrics

from .changes import ChangeFeed
from .config import DirectoryConfig
from .errors import DirectoryError, DirectoryUnavailable, connection_lost, translate
from .ephemeral import EphemeralVerbs
from .groups import GroupReads
from .members import MemberChanges
from .people import PeopleReads
from .provisioning import Provisioning
from .users import UserVerbs

log = logging.getLogger(__name__)


class Directory(UserVerbs, GroupReads, PeopleReads, MemberChanges, Provisioning, EphemeralVerbs, ChangeFeed):
    """A bound connection to one DC. Use :func:`~jitad.directory.connection.connect` to get one; close it when done."""

    def __init__(self, conn: Connection, config: DirectoryConfig, url: str,
                 reopen: "Callable[[], tuple[Connection, str]] | None" = None):
        self._conn = conn
        self.config = config
        self.url = url
        self._pam_ttl: bool | None = None
        self._reopen = reopen  # binds a new connection (connection.py), for a reused one found dead
        # True while a reused connection has not answered yet in this session (see _read).
        self.unproven = False

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

    def _read(self, operation: str, run):
        """Run the read ``run(conn)`` on this connection and return its result.

        On a reused connection that has not answered yet in this session (``unproven``: the
        session skipped its root DSE read because the connection was used moments ago), a
        failure that means the connection died (closed by the DC, reset, no answer) binds
        afresh and runs the read once more on the new connection. Reads only: a modify is
        never repeated here, since whether the DC applied it is unknown; it raises, and the
        engine's retry and read-back decide.
        """
        try:
            with metrics.timed(metrics.dc_call_seconds, metrics.dc_call_errors, call="read", dc=self.url), \
                    translate(operation):
                result = run(self._conn)
        except DirectoryUnavailable as e:
            if not (self.unproven and self._reopen is not None and connection_lost(e)):
                raise
            log.info("directory connection to %s was lost while idle (%s): binding again", self.url, e)
            self.unproven = False
            self.close()
            self._conn, self.url = self._reopen()
            with metrics.timed(metrics.dc_call_seconds, metrics.dc_call_errors, call="read", dc=self.url), \
                    translate(operation):
                result = run(self._conn)
        self.unproven = False
        return result

    def _write(self, operation: str, run):
        """Run the change ``run(conn)``: on a connection that answered in this session only.

        A reused connection not yet proven is checked first with a root DSE read (which binds
        afresh if it is dead, see :meth:`_read`), so a change is never sent on a connection
        that may have died while idle, and never sent twice from here.
        """
        if self.unproven:
            self._read("check connection", lambda conn: conn.search("", "(objectClass=*)", BASE, attributes=["currentTime"]))
        with metrics.timed(metrics.dc_call_seconds, metrics.dc_call_errors, call="write", dc=self.url), \
                translate(operation):
            return run(self._conn)

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the one search every verb reads through ---------------------------------------
    def _search(self, base: str, filt: str, scope=SUBTREE, attributes=None, operation="search") -> list[dict]:
        self._read(operation, lambda conn: conn.search(base, filt, scope, attributes=attributes or []))
        return [r for r in self._conn.response if r.get("type") == "searchResEntry"]
