"""The group reads of :class:`~jitad.directory.client.Directory`: facts, members, nesting, SIDs.

A mixin, so one bound connection serves every verb; ``Directory`` (client.py) holds the
connection and ``_search``. Nothing here changes the directory.
"""
from dataclasses import dataclass

from ldap3 import BASE
from ldap3.protocol.formatters.formatters import format_sid

from .dn import _SID_RE, _domain_root, _usable_sid, escape_filter, escaped_dn, sid_filter_value
from .errors import DirectoryNotFound, DirectoryRejected

_IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN


@dataclass(frozen=True)
class DirectoryPrincipal:
    """A domain account or group found by SID."""

    sid: str
    dn: str
    name: str
    is_group: bool



@dataclass(frozen=True)
class GroupFacts:
    """What the DC says of a DN jitad is asked to manage: is anything there, a group, protected."""

    dn: str
    exists: bool
    is_group: bool = False
    admin_count: int = 0
    sid: str = ""
    # Each protected group (privileged RID or adminCount=1) holding it, directly or nested:
    # (DN, objectSid, adminCount).
    protected_parents: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class GroupMembers:
    """A group's direct members and who the group is (objectSid, adminCount), from one read."""

    dn: str
    members: frozenset[str]
    sid: str = ""
    admin_count: int = 0



class GroupReads:
    """What the DC says of groups and their members (mixed into Directory)."""

    def group_exists(self, group_dn: str) -> bool:
        """True if ``group_dn`` names a group."""
        try:
            return bool(self._search(group_dn, "(objectClass=group)", BASE, operation="read group"))
        except DirectoryNotFound:
            return False

    def group_facts(self, dn: str) -> GroupFacts:
        """Whether ``dn`` exists and is a group, with its adminCount and objectSid (one base read),
        and the protected groups holding it at any depth.

        A DN that does not parse is refused here and never sent to the DC; one that does is
        sent with its values escaped. The search for protected groups (a matching-rule-in-chain
        search over the domain, the costliest read of an add) runs only when the group is a
        member of some group: with no ``memberOf`` value on the DC the chain has no first link,
        so that search could find nothing there.
        """
        try:
            entries = self._search(escaped_dn(dn), "(objectClass=*)", BASE,
                                   attributes=["objectClass", "adminCount", "objectSid", "memberOf"],
                                   operation="read group")
        except DirectoryNotFound:
            entries = []
        if not entries:
            return GroupFacts(dn=dn, exists=False)
        a, raw = entries[0]["attributes"], entries[0]["raw_attributes"]
        classes = a.get("objectClass") or []
        classes = [str(c).lower() for c in (classes if isinstance(classes, list) else [classes])]
        count = raw.get("adminCount") or [b"0"]
        is_group = "group" in classes
        sid = format_sid(raw["objectSid"][0]) if raw.get("objectSid") else ""
        return GroupFacts(
            dn=entries[0]["dn"], exists=True, is_group=is_group, admin_count=int(count[0] or 0), sid=sid,
            protected_parents=self._protected_parents(entries[0]["dn"], sid) if is_group and a.get("memberOf") else (),
        )

    def _protected_parents(self, dn: str, sid: str) -> tuple[tuple[str, str, int], ...]:
        """The protected groups holding ``dn`` at any depth: one search, narrowed to protected groups."""
        from .managed import PROTECTED_RIDS  # managed.py builds on this module

        domain = sid.rsplit("-", 1)[0] if _SID_RE.fullmatch(sid or "") else ""
        sids = [f"S-1-5-32-{r}" for r in sorted(PROTECTED_RIDS)] + [f"{domain}-{r}" for r in sorted(PROTECTED_RIDS) if domain]
        clause = "".join(f"(objectSid={sid_filter_value(s)})" for s in sids if _usable_sid(s))
        filt = f"(&(objectClass=group)(|(adminCount=1){clause})(member:{_IN_CHAIN}:={escape_filter(dn)}))"
        # From the root of the group's own domain, not the configured base DN: that may be an OU
        # (where the people are), while Domain Admins sits in CN=Users and Administrators in CN=Builtin.
        found = []
        for e in self._search(_domain_root(dn) or self.config.base_dn, filt, attributes=["objectSid", "adminCount"],
                              operation="read enclosing protected groups"):
            r = e["raw_attributes"]
            found.append((e["dn"], format_sid(r["objectSid"][0]) if r.get("objectSid") else "",
                          int((r.get("adminCount") or [b"0"])[0] or 0)))
        return tuple(sorted(found))

    def group_members(self, group_dn: str) -> GroupMembers:
        """Direct members of a group, as DNs, with its objectSid and adminCount (one base read).

        ldap3 follows AD's ranged retrieval (member;range=…). Pass the answer to
        :meth:`remove_members` so it knows the group's SID without asking again.
        """
        entries = self._search(group_dn, "(objectClass=group)", BASE, attributes=["member", "objectSid", "adminCount"],
                               operation="read members")
        if not entries:
            raise DirectoryNotFound(f"{group_dn} is not a group")
        a, raw = entries[0]["attributes"], entries[0]["raw_attributes"]
        members = a.get("member") or []
        return GroupMembers(
            dn=entries[0]["dn"] or group_dn,
            members=frozenset(members if isinstance(members, list) else [members]),
            sid=format_sid(raw["objectSid"][0]) if raw.get("objectSid") else "",
            admin_count=int((raw.get("adminCount") or [b"0"])[0] or 0),
        )

    def members_of(self, group_dn: str) -> set[str]:
        """Direct members of a group, as DNs. ldap3 follows AD's ranged retrieval (member;range=…)."""
        return set(self.group_members(group_dn).members)

    def is_member(self, group_dn: str, member_dn: str) -> bool:
        """True if ``member_dn`` is a direct member of ``group_dn`` (asked of the DC, not computed)."""
        if "\x00" in member_dn:  # no DN holds NUL; Samba would match on the part before it
            return False
        filt = f"(member={escape_filter(member_dn)})"
        return bool(self._search(group_dn, filt, BASE, operation="check member"))

    def is_member_nested(self, group_dn: str, member_dn: str) -> bool:
        """True if ``member_dn`` is in ``group_dn`` directly or through nested groups."""
        if "\x00" in member_dn:
            return False
        filt = f"(member:{_IN_CHAIN}:={escape_filter(member_dn)})"
        return bool(self._search(group_dn, filt, BASE, operation="check nested member"))

    def object_sid(self, dn: str) -> str:
        """The objectSid of the object at ``dn``, as S-1-... (a JIT group's, for host checks)."""
        entries = self._search(dn, "(objectClass=*)", BASE, attributes=["objectSid"], operation="read objectSid")
        raw = entries[0]["raw_attributes"].get("objectSid") if entries else None
        if not raw:
            raise DirectoryNotFound(f"{dn} has no objectSid")
        return format_sid(raw[0])

    def resolve_sids(self, sids) -> dict[str, "DirectoryPrincipal"]:
        """The domain accounts and groups behind ``sids`` ({sid: principal}); unknown SIDs are left out."""
        wanted = sorted({s for s in sids if _usable_sid(s)})
        found: dict[str, DirectoryPrincipal] = {}
        for i in range(0, len(wanted), 100):
            clause = "".join(f"(objectSid={sid_filter_value(s)})" for s in wanted[i : i + 100])
            for e in self._search(self.config.base_dn, f"(|{clause})",
                                  attributes=["objectSid", "sAMAccountName", "objectClass"], operation="resolve SIDs"):
                raw = e["raw_attributes"].get("objectSid")
                if not raw:
                    continue
                classes = [c.lower() for c in (e["attributes"].get("objectClass") or [])]
                sam = e["attributes"].get("sAMAccountName") or ""
                sid = format_sid(raw[0])
                found[sid] = DirectoryPrincipal(
                    sid=sid, dn=e["dn"], name=sam[0] if isinstance(sam, list) else str(sam),
                    is_group="group" in classes,
                )
        return found

    def groups_containing(self, member_dn: str, group_sids) -> set[str]:
        """Which of ``group_sids`` (domain groups) contain ``member_dn``, directly or nested."""
        wanted = sorted({s for s in group_sids if _usable_sid(s)})
        if not wanted or "\x00" in member_dn:
            return set()
        found: set[str] = set()
        for i in range(0, len(wanted), 100):
            sids = "".join(f"(objectSid={sid_filter_value(s)})" for s in wanted[i : i + 100])
            filt = f"(&(objectClass=group)(|{sids})(member:{_IN_CHAIN}:={escape_filter(member_dn)}))"
            for e in self._search(self.config.base_dn, filt, attributes=["objectSid"], operation="check nested groups"):
                raw = e["raw_attributes"].get("objectSid")
                if raw:
                    found.add(format_sid(raw[0]))
        return found

    def groups_of(self, member_dn: str) -> list[str]:
        """Names (sAMAccountName) of every group ``member_dn`` is in, directly or nested."""
        if "\x00" in member_dn:
            raise DirectoryRejected("a DN cannot contain NUL")
        filt = f"(&(objectClass=group)(member:{_IN_CHAIN}:={escape_filter(member_dn)}))"
        entries = self._search(self.config.base_dn, filt, attributes=["sAMAccountName"], operation="read groups")
        names = []
        for e in entries:
            v = e["attributes"].get("sAMAccountName")
            v = v[0] if isinstance(v, list) and v else v
            if v:
                names.append(str(v))
        return sorted(names, key=str.lower)
