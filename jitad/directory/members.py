"""Membership changes of :class:`~jitad.directory.client.Directory`: add and remove, refused outside what jitad owns.

Idempotent and verified by reading back: Samba answers 68 (entryAlreadyExists) to a
duplicate add and 53 ("Attribute member already deleted") to a repeated delete; Windows
with permissive modify answers 0; both are success once the read-back agrees. A mixin:
``Directory`` (client.py) holds the connection.
"""
from ldap3 import MODIFY_ADD, MODIFY_DELETE

from .dn import member_ttl_value, normalize_dn
from .errors import (_ENTRY_ALREADY_EXISTS, _NO_SUCH_ATTRIBUTE, _UNWILLING_TO_PERFORM, DirectoryNotFound,
                     DirectoryNotManaged, DirectoryRejected, _result_code)
from .groups import GroupMembers

_PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)
_PAM_FEATURE_RDN = "CN=Privileged Access Management Feature"


class MemberChanges:
    """Adding and removing group members, only in groups jitad owns (mixed into Directory)."""

    def pam_ttl_supported(self) -> bool:
        """True when the forest has the Windows Server 2016 PAM optional feature enabled."""
        if self.config.member_ttl == "off":
            return False
        if self._pam_ttl is None:
            config_nc = (self._conn.server.info.other.get("configurationNamingContext") or [""])[0]
            base = f"CN=Optional Features,CN=Directory Service,CN=Windows NT,CN=Services,{config_nc}"
            try:
                entries = self._search(
                    base, f"({_PAM_FEATURE_RDN})", attributes=["msDS-EnabledFeatureBL"], operation="read optional features"
                )
            except DirectoryNotFound:
                entries = []
            self._pam_ttl = any(e["attributes"].get("msDS-EnabledFeatureBL") for e in entries)
        return self._pam_ttl

    # -- membership changes ------------------------------------------------------------
    def _require_managed(self, group_dn: str, what: str) -> None:
        """Refuse a group outside this connection's JIT OU(s) before anything is sent to the DC."""
        # managed.py builds on this module, so it is imported when first needed.
        from .managed import jit_ous, require_managed

        require_managed(group_dn, what, ous=jit_ous(self.config.jit_ou))

    def _require_unprotected(self, group_dn: str, nested_into_protected: bool = False) -> None:
        """Refuse to add to a protected group, or one nested into a protected group (asked of the DC now).

        The policy file checked this when the target was named; a group nested into Domain
        Admins since (SDProp marks it adminCount=1 within the hour) is refused from the next add.
        ``nested_into_protected`` (a target's explicit tier-0 opt-in) accepts that nesting and
        its adminCount=1; a well-known privileged group is refused whatever it says.
        """
        from .managed import facts_problem

        facts = self.group_facts(group_dn)
        # A missing group: the modify says so.
        why = facts_problem(facts, nested_into_protected=nested_into_protected) if facts.exists else ""
        if why:
            raise DirectoryNotManaged(group_dn, f"jitad does not add members to {group_dn!r}: {why}")

    def _require_not_privileged(self, group_dn: str, read: "GroupMembers | None") -> None:
        """Refuse to remove members of a well-known privileged group (by its SID's RID)."""
        from .managed import PROTECTED_RIDS, rid  # managed.py builds on this module

        if read is not None and normalize_dn(read.dn) == normalize_dn(group_dn):
            sid = read.sid
        else:
            try:
                sid = self.object_sid(group_dn)
            except DirectoryNotFound:
                return  # a missing group: the modify says so
        number = rid(sid)
        if number in PROTECTED_RIDS:
            raise DirectoryNotManaged(group_dn, f"jitad does not remove members from {group_dn!r}: "
                                                f"it is a well-known privileged group (RID {number})")

    def add_member(self, group_dn: str, member_dn: str, ttl_seconds: int | None = None, *,
                   nested_into_protected: bool = False) -> bool:
        """Add ``member_dn`` to ``group_dn`` (with a PAM TTL when the forest supports one).

        Returns True if this call added it, False if it was already there. Raises unless
        a read-back shows the member present. Raises DirectoryNotManaged, without a word
        to the DC, when ``group_dn`` is not under the JIT OU, whatever the caller was told;
        and, after reading the group, when it is protected or nested into a protected group
        (unless ``nested_into_protected``: the target is a tier-0 JIT group, nested on
        purpose; a well-known privileged group such as Domain Admins is refused all the same).
        Removals are never refused for adminCount=1 or nesting (taking a right away is always
        wanted), only for a well-known privileged group (see :meth:`remove_members`).
        """
        self._require_managed(group_dn, "add members to")
        self._require_unprotected(group_dn, nested_into_protected)
        return self._add_member(group_dn, member_dn, ttl_seconds)

    def _add_member(self, group_dn: str, member_dn: str, ttl_seconds: int | None = None) -> bool:
        value = member_dn
        if ttl_seconds is not None and self.pam_ttl_supported():
            value = member_ttl_value(member_dn, ttl_seconds)
        added = True
        try:
            self._write("add member", lambda conn: conn.modify(group_dn, {"member": [(MODIFY_ADD, [value])]},
                                                               controls=[_PERMISSIVE_MODIFY]))
        except DirectoryRejected as e:
            if _result_code(e) != _ENTRY_ALREADY_EXISTS:
                raise
            added = False
        if not self.is_member(group_dn, member_dn):
            raise DirectoryRejected(f"{member_dn} is not in {group_dn} after adding it")
        return added

    def remove_member(self, group_dn: str, member_dn: str) -> bool:
        """Remove ``member_dn`` from ``group_dn``. True if this call removed it; raises unless verified gone."""
        return bool(self.remove_members(group_dn, [member_dn]))

    def remove_members(self, group_dn: str, member_dns: list[str], *, read: GroupMembers | None = None) -> set[str]:
        """Remove many members in one modify (falling back to one by one), then verify.

        Returns the DNs this call removed. Members already absent count as success. Raises
        DirectoryRejected if any of them is still present afterwards, and DirectoryNotManaged,
        without a word to the DC, when ``group_dn`` is not under the JIT OU; and before any
        modify when the group is a well-known privileged group (Domain Admins and the like,
        by the RID of its objectSid) wherever it sits. ``read`` is the caller's
        :meth:`group_members` answer for this group, which carries the SID; without it the
        SID is read here first (one more round trip).
        """
        self._require_managed(group_dn, "remove members from")
        if not member_dns:
            return set()
        self._require_not_privileged(group_dn, read)
        removed: set[str] = set()
        try:
            self._write("remove members", lambda conn: conn.modify(
                group_dn, {"member": [(MODIFY_DELETE, list(member_dns))]}, controls=[_PERMISSIVE_MODIFY]))
            removed = set(member_dns)
        except DirectoryRejected as e:
            # One absent value fails the whole modify on Samba (53) and on AD without
            # permissive modify (16): fall back to one value at a time. Either way the
            # read-back below decides.
            if _result_code(e) not in (_UNWILLING_TO_PERFORM, _NO_SUCH_ATTRIBUTE):
                raise
            for dn in member_dns if len(member_dns) > 1 else ():
                try:
                    self._write("remove member", lambda conn: conn.modify(
                        group_dn, {"member": [(MODIFY_DELETE, [dn])]}, controls=[_PERMISSIVE_MODIFY]))
                    removed.add(dn)
                except DirectoryRejected as e2:
                    if _result_code(e2) not in (_UNWILLING_TO_PERFORM, _NO_SUCH_ATTRIBUTE):
                        raise
        still = {normalize_dn(d) for d in self.members_of(group_dn)} & {normalize_dn(d) for d in member_dns}
        if still:
            raise DirectoryRejected(f"{len(still)} member(s) still in {group_dn} after removing them")
        return removed
