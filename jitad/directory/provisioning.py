"""Building a demo or test estate: OUs, groups, users and memberships anywhere, and deleting them.

Used by the demo seed, the tests and the bench, never by the engine or the reconciler
(they change members only through the verbs that refuse groups jitad does not own).
A mixin: ``Directory`` (client.py) holds the connection.
"""
import re

from ldap3 import BASE, MODIFY_REPLACE

from .dn import rdn
from .errors import _ENTRY_ALREADY_EXISTS, DirectoryNotFound, DirectoryRejected, _result_code


class Provisioning:
    """Create-if-missing helpers for demo and test estates (mixed into Directory)."""

    def ensure_member(self, group_dn: str, member_dn: str) -> bool:
        """Put ``member_dn`` in any group, inside the JIT OU or not (verified; True if this call added it).

        For building a demo or test estate only (people in eligibility groups, a group
        nested into another): the engine and the reconciler change members only through
        :meth:`add_member` and :meth:`remove_members`, which refuse groups jitad does not own.
        """
        return self._add_member(group_dn, member_dn)

    def ensure_ou(self, ou_dn: str) -> None:
        """Create an organizational unit if it does not exist."""
        try:
            self._write("create OU", lambda conn: conn.add(ou_dn, "organizationalUnit"))
        except DirectoryRejected as e:
            if _result_code(e) != _ENTRY_ALREADY_EXISTS:
                raise

    def ensure_group(self, name: str, parent_dn: str, description: str = "") -> str:
        """Create a global security group ``CN=<name>,<parent_dn>`` if missing; return its DN."""
        dn = f"{rdn('CN', name)},{parent_dn}"
        # A CN may hold any character; a sAMAccountName may not hold these (nor end in ".").
        sam = re.sub(r'["/\\\[\]:;|=,+*?<>\x00-\x1f]', "_", name)[:256].lstrip(" ").rstrip(". ") or "_"
        attrs = {"sAMAccountName": sam, "groupType": -2147483646}
        if description:
            attrs["description"] = description
        try:
            self._write("create group", lambda conn: conn.add(dn, "group", attrs))
        except DirectoryRejected as e:
            if _result_code(e) != _ENTRY_ALREADY_EXISTS or not self._exists(dn):
                raise  # 68 for a DN that is not there: the sAMAccountName is taken elsewhere
        return dn

    def ensure_user(self, sam: str, parent_dn: str, password: str | None = None, display_name: str = "",
                    mail: str = "", upn_suffix: str = "") -> str:
        """Create an enabled user if missing (password set over TLS); return its DN."""
        dn = f"{rdn('CN', sam)},{parent_dn}"
        attrs = {"sAMAccountName": sam, "displayName": display_name or sam}
        if mail:
            attrs["mail"] = mail
        if upn_suffix:
            attrs["userPrincipalName"] = f"{sam}@{upn_suffix}"
        try:
            self._write("create user", lambda conn: conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs))
        except DirectoryRejected as e:
            if _result_code(e) != _ENTRY_ALREADY_EXISTS or not self._exists(dn):
                raise  # 68 for a DN that is not there: the sAMAccountName is taken elsewhere
            return dn
        if password:
            self.set_password(dn, password)
            self._write("enable user", lambda conn: conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [512])]}))
        return dn

    def _exists(self, dn: str) -> bool:
        try:
            return bool(self._search(dn, "(objectClass=*)", BASE, operation="read back"))
        except DirectoryNotFound:
            return False

    def delete(self, dn: str) -> None:
        """Delete one leaf object; absent is fine."""
        try:
            self._write("delete", lambda conn: conn.delete(dn))
        except DirectoryNotFound:
            pass
