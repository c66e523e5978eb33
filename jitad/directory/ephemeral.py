"""Ephemeral accounts: AD users that exist only for one session, in an OU under the JIT OU (a mixin of Directory).

An ephemeral account is created enabled with a generated password, disabled when its
session ends and deleted after. Every verb refuses an OU or account that is not under a
configured JIT OU (see managed.py), and a disable or delete refuses an object that is not
a user, so these verbs can never touch a person's own account or a group. Disable and
delete are idempotent and verified by reading back. A password never appears in an
exception or a log line: the DC's refusal is reported by its code and its own words only.
"""
import logging
import re
from dataclasses import dataclass

from ldap3 import BASE, LEVEL
from ldap3.protocol.formatters.formatters import format_sid

from .dn import dn_domain, escaped_dn, rdn, split_dn
from .errors import _ENTRY_ALREADY_EXISTS, DirectoryError, DirectoryNotFound, DirectoryNotManaged, DirectoryRejected, _result_code
from .users import _UF_ACCOUNTDISABLE, _USER_ATTRS, DirectoryUser

# managed.py imports connection.py, which imports client.py, which mixes this module in:
# its rules are imported where they are used.

log = logging.getLogger(__name__)

SAM_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,19}$")
_SAM_MAX = 20
_PAGE = 500
_PAGED_RESULTS = "1.2.840.113556.1.4.319"
_LIST_ATTRS = ["sAMAccountName", "objectSid", "userAccountControl", "description", "info"]


@dataclass(frozen=True)
class EphemeralAccount:
    """One account in an ephemeral OU, as :meth:`EphemeralVerbs.ephemeral_list` reads it."""

    dn: str
    sam: str
    sid: str
    disabled: bool
    description: str
    info: str


def ephemeral_sam(username: str, suffix: str) -> str:
    """The sAMAccountName of an ephemeral account: ``<user>-<suffix>``, at most 20 characters.

    Both parts are lowercased and keep only ``[a-z0-9._-]``; a ``DOMAIN\\`` prefix or an
    ``@domain`` suffix of the user name is dropped first. The user part is cut so the whole
    fits; the suffix is never cut. ValueError when no valid name can be made.
    """
    user = (username or "").rsplit("\\", 1)[-1].split("@", 1)[0]
    user = re.sub(r"[^a-z0-9._-]", "", user.lower()).lstrip("._-")
    tail = re.sub(r"[^a-z0-9._-]", "", (suffix or "").lower())
    if not tail:
        raise ValueError("an ephemeral account needs a suffix of letters, digits, '.', '_' or '-'")
    room = _SAM_MAX - len(tail) - 1
    if room < 1:
        raise ValueError(f"the suffix {tail!r} leaves no room for the user name in {_SAM_MAX} characters")
    user = user[:room]
    if not user:
        raise ValueError(f"the user name {username!r} has no letters or digits to build an account name from")
    sam = f"{user}-{tail}"
    if not SAM_RE.fullmatch(sam):  # cannot happen with the rules above; the seam's rule is the last word
        raise ValueError(f"{sam!r} is not a valid ephemeral account name")
    return sam


def _first(attrs: dict, name: str) -> str:
    v = attrs.get(name)
    if isinstance(v, list):
        v = v[0] if v else ""
    return "" if v is None else str(v)


class EphemeralVerbs:
    """Create, disable, delete and list session-only accounts under the JIT OU (mixed into Directory)."""

    def ephemeral_create(self, *, ou_dn: str, sam: str, password: str, description: str, info: str) -> DirectoryUser:
        """Create the enabled user ``CN=<sam>,<ou_dn>`` with ``password``; return it as read back.

        Refused (DirectoryNotManaged) for an OU not under a JIT OU or a name outside
        ``^[a-z0-9][a-z0-9._-]{0,19}$``. An existing account of that name is refused, never
        taken over. When the DC refuses the password (or the enabling), the half-created
        account is deleted and DirectoryRejected raised; no message holds the password.
        """
        from .managed import require_managed

        require_managed(ou_dn, "create an ephemeral account in")
        if not isinstance(sam, str) or not SAM_RE.fullmatch(sam):
            raise DirectoryNotManaged(ou_dn, f"jitad does not create the ephemeral account {sam!r}: "
                                             "its name must match ^[a-z0-9][a-z0-9._-]{0,19}$")
        if not isinstance(password, str) or not password or "\x00" in password or len(password) > 256:
            raise DirectoryRejected("an ephemeral account's password must be 1 to 256 characters, without NUL")
        parent = escaped_dn(ou_dn)
        dn = f"{rdn('CN', sam)},{parent}"
        attrs = {"sAMAccountName": sam, "userPrincipalName": f"{sam}@{dn_domain(parent)}"}
        if description:
            attrs["description"] = description
        if info:
            attrs["info"] = info
        try:
            self._write("create ephemeral account",
                        lambda conn: conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs))
        except DirectoryRejected as e:
            if _result_code(e) == _ENTRY_ALREADY_EXISTS:
                raise DirectoryRejected(f"an account named {sam!r} already exists ({dn}); it is not taken over") from e
            raise
        try:
            self._ephemeral_set_password(dn, password)
            self.set_enabled(dn, True)
            user = self._ephemeral_read(dn)
        except BaseException:
            self._ephemeral_remove_half_created(dn)
            raise
        log.info("ephemeral account created: %s", dn)
        return user

    def _ephemeral_set_password(self, dn: str, password: str) -> None:
        """set_password, with a refusal re-raised in words that cannot hold the password."""
        try:
            self.set_password(dn, password)
        except DirectoryError as e:
            cause = e.__cause__
            said = str(getattr(cause, "message", "") or "").replace(password, "[password]")
            code = getattr(cause, "result", None)
            detail = f"result {code}: {said.strip()}" if code is not None else type(e).__name__
            kind = type(e) if e.transient else DirectoryRejected
            raise kind(f"the DC refused the password of the new ephemeral account {dn}, "
                       f"which is removed again ({detail})") from None

    def _ephemeral_remove_half_created(self, dn: str) -> None:
        try:
            self._write("delete half-created ephemeral account", lambda conn: conn.delete(dn))
        except DirectoryNotFound:
            pass
        except DirectoryError:
            log.error("could not delete the half-created ephemeral account %s", dn, exc_info=True)

    def _ephemeral_read(self, dn: str) -> DirectoryUser:
        entries = self._search(dn, "(objectClass=user)", BASE, attributes=_USER_ATTRS, operation="read ephemeral account")
        if not entries:
            raise DirectoryNotFound(f"no user {dn}")
        return self._to_user(entries[0])

    def _ephemeral_target(self, dn: str, what: str) -> dict | None:
        """The account's entry (objectClass, userAccountControl), or None if gone; refuses what is not ours.

        The account's parent must be under a JIT OU (the account itself is then too), and the
        object must be a user that is not a computer.
        """
        from .managed import jit_ous, under_jit_ou

        try:
            _value, parent = split_dn(dn)
        except DirectoryRejected:
            raise DirectoryNotManaged(dn, f"jitad does not {what} {dn!r}: it is not a valid DN") from None
        if not under_jit_ou(parent):
            ous = "; ".join(jit_ous()) or "(JITAD_LDAP_JIT_OU is not set)"
            raise DirectoryNotManaged(dn, f"jitad does not {what} {dn!r}: its OU is not under the JIT OU {ous}")
        target = escaped_dn(dn)
        try:
            entries = self._search(target, "(objectClass=*)", BASE, attributes=["objectClass", "userAccountControl"],
                                   operation=f"read account to {what}")
        except DirectoryNotFound:
            return None
        if not entries:
            return None
        classes = {c.lower() for c in entries[0]["attributes"].get("objectClass") or []}
        if "user" not in classes or "computer" in classes:
            raise DirectoryNotManaged(dn, f"jitad does not {what} {dn!r}: it is not a user account")
        return entries[0]

    def ephemeral_disable(self, dn: str) -> bool:
        """Disable the ephemeral account ``dn`` (verified); True if this call disabled it.

        Already disabled, or already gone, is success (False).
        """
        entry = self._ephemeral_target(dn, "disable")
        if entry is None:
            return False
        uac = int(_first(entry["attributes"], "userAccountControl") or 0)
        if uac & _UF_ACCOUNTDISABLE:
            return False
        try:
            self.set_enabled(entry["dn"], False)
        except DirectoryNotFound:
            return False  # deleted between the read and the change: nothing can log on with it
        log.info("ephemeral account disabled: %s", entry["dn"])
        return True

    def ephemeral_delete(self, dn: str) -> bool:
        """Delete the ephemeral account ``dn``, disabling it first; True if this call deleted it.

        Already gone is success (False). Verified by reading back: the DN no longer resolves.
        """
        entry = self._ephemeral_target(dn, "delete")
        if entry is None:
            return False
        self.ephemeral_disable(dn)  # if the delete fails, the account at least no longer logs on
        try:
            self._write("delete ephemeral account", lambda conn: conn.delete(entry["dn"]))
        except DirectoryNotFound:
            return False
        try:
            still = self._search(entry["dn"], "(objectClass=*)", BASE, operation="read back deleted account")
        except DirectoryNotFound:
            still = []
        if still:
            raise DirectoryRejected(f"{entry['dn']} still exists after it was deleted")
        log.info("ephemeral account deleted: %s", entry["dn"])
        return True

    def ephemeral_read(self, dn: str) -> EphemeralAccount | None:
        """The ephemeral account ``dn`` as this DC has it, or None if it does not exist here.

        Refused (DirectoryNotManaged) for a DN not under a JIT OU or an object that is not a user.
        """
        if self._ephemeral_target(dn, "read") is None:
            return None
        try:
            entries = self._search(escaped_dn(dn), "(objectClass=user)", BASE, attributes=_LIST_ATTRS,
                                   operation="read ephemeral account")
        except DirectoryNotFound:
            return None
        return _account(entries[0]) if entries else None

    def ephemeral_list(self, ou_dn: str) -> list[EphemeralAccount]:
        """The user accounts directly in ``ou_dn`` (an OU under a JIT OU), read page by page."""
        from .managed import require_managed

        require_managed(ou_dn, "list ephemeral accounts in")
        base = escaped_dn(ou_dn)
        filt = "(&(objectCategory=person)(objectClass=user))"
        found, cookie = [], None
        while True:
            self._read("list ephemeral accounts", lambda conn: conn.search(
                base, filt, LEVEL, attributes=_LIST_ATTRS, paged_size=_PAGE, paged_cookie=cookie))
            found += [r for r in self._conn.response if r.get("type") == "searchResEntry"]
            controls = (self._conn.result or {}).get("controls") or {}
            cookie = (controls.get(_PAGED_RESULTS) or {}).get("value", {}).get("cookie")
            if not cookie:
                break
        return sorted((_account(entry) for entry in found), key=lambda acc: acc.sam)


def _account(entry: dict) -> EphemeralAccount:
    a, raw = entry["attributes"], entry["raw_attributes"]
    return EphemeralAccount(
        dn=entry["dn"],
        sam=_first(a, "sAMAccountName"),
        sid=format_sid(raw["objectSid"][0]) if raw.get("objectSid") else "",
        disabled=bool(int(_first(a, "userAccountControl") or 0) & _UF_ACCOUNTDISABLE),
        description=_first(a, "description"),
        info=_first(a, "info"),
    )
