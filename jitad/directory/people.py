"""Who is in a group, as people: the read an eligibility review starts from (a mixin of Directory).

Eligibility comes from AD groups named by their sAMAccountName (as they are mirrored into
Django groups); a review needs every person those groups hold, at any depth of nesting,
with the name and e-mail address jitad knows them by. Every value sent is escaped; the
answer is read in pages, so a group larger than the DC's page size is read whole.
"""
from ldap3 import SUBTREE

from .dn import escape_filter, escaped_dn
from .errors import DirectoryNotFound, DirectoryRejected
from .users import _USER_ATTRS, DirectoryUser

_IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
_PAGE = 500


class PeopleReads:
    """Groups by name, and the user accounts inside a group at any depth (mixed into Directory)."""

    def _paged(self, base: str, filt: str, attributes: list[str], operation: str) -> list[dict]:
        """Every entry a subtree search finds, page by page (the simple paged results control)."""
        found, cookie = [], None
        while True:
            self._read(operation, lambda conn: conn.search(base, filt, SUBTREE, attributes=attributes, paged_size=_PAGE,
                                                           paged_cookie=cookie))
            found += [r for r in self._conn.response if r.get("type") == "searchResEntry"]
            controls = (self._conn.result or {}).get("controls") or {}
            cookie = (controls.get("1.2.840.113556.1.4.319") or {}).get("value", {}).get("cookie")
            if not cookie:
                return found

    def find_group_dn(self, name: str) -> str:
        """The DN of the group whose sAMAccountName is ``name``; DirectoryNotFound when there is none."""
        if not name or len(name) > 256 or "\x00" in name:
            raise DirectoryRejected("a group name must be 1 to 256 characters, without NUL")
        filt = f"(&(objectClass=group)(sAMAccountName={escape_filter(name)}))"
        entries = self._search(self.config.base_dn, filt, attributes=["sAMAccountName"], operation="find group")
        if not entries:
            raise DirectoryNotFound(f"no group {name!r} in {self.config.base_dn}")
        if len(entries) > 1:
            raise DirectoryRejected(f"{len(entries)} groups match {name!r}")
        return entries[0]["dn"]

    def group_people(self, group_dn: str) -> list[DirectoryUser]:
        """The user accounts in ``group_dn``, directly or through nested groups, by sAMAccountName.

        Raises DirectoryNotFound when ``group_dn`` is not a group (a nested-membership search
        of a missing group would quietly answer nobody).
        """
        if not self.group_exists(escaped_dn(group_dn)):
            raise DirectoryNotFound(f"{group_dn} is not a group")
        filt = f"(&(objectCategory=person)(objectClass=user)(memberOf:{_IN_CHAIN}:={escape_filter(group_dn)}))"
        people = [self._to_user(e) for e in self._paged(self.config.base_dn, filt, _USER_ATTRS, "read group people")]
        return sorted(people, key=lambda u: u.sam_account_name.lower())
