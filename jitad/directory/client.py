"""One bound LDAPS session to a domain controller, and the verbs jitad needs from it.

Every filter value goes through ``escape_filter_chars`` and every DN part built here
through ``rdn``. Membership changes are idempotent and verified by reading back:
Samba answers 68 (entryAlreadyExists) to a duplicate add and 53 ("Attribute member
already deleted") to a repeated delete; Windows with permissive modify answers 0; both
are success once the read-back agrees.
"""
import logging
import math
import re
import ssl
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from ldap3 import BASE, DSA, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core import exceptions as lx
from ldap3.protocol.formatters.formatters import format_sid, format_uuid_le
from ldap3.utils.conv import escape_filter_chars

from .config import DirectoryConfig
from .errors import (DirectoryError, DirectoryMisconfigured, DirectoryNotFound, DirectoryNotManaged, DirectoryRejected,
                     DirectoryUnavailable)

log = logging.getLogger(__name__)

# Result codes a DC uses for "not now": timeLimitExceeded, busy, unavailable.
_TRANSIENT_RESULTS = {3, 51, 52}
_ENTRY_ALREADY_EXISTS = 68
_UNWILLING_TO_PERFORM = 53
_NO_SUCH_ATTRIBUTE = 16
_NO_SUCH_OBJECT = 32
_IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
_PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)
_UF_ACCOUNTDISABLE = 0x2
_UF_LOCKOUT = 0x10
_UF_DONT_EXPIRE_PASSWD = 0x10000
_UAC_COMPUTED = "msDS-User-Account-Control-Computed"
_PAM_FEATURE_RDN = "CN=Privileged Access Management Feature"
_USER_ATTRS = [
    "distinguishedName",
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "givenName",
    "sn",
    "mail",
    "objectSid",
    "objectGUID",
    "userAccountControl",
]


_SID_RE = re.compile(r"^S-1-[0-9]+(-[0-9]+)+$")


def sid_filter_value(sid: str) -> str:
    """A SID as an escaped binary LDAP filter value (works on every AD and on Samba)."""
    if not _SID_RE.fullmatch(sid):
        raise DirectoryRejected(f"{sid!r} is not a SID")
    parts = [int(p) for p in sid.split("-")[1:]]
    revision, authority, subs = parts[0], parts[1], parts[2:]
    if revision > 255 or authority >= 2**48 or len(subs) > 15 or any(s >= 2**32 for s in subs):
        raise DirectoryRejected(f"{sid!r} is not a SID")
    raw = bytes([revision, len(subs)]) + authority.to_bytes(6, "big") + b"".join(s.to_bytes(4, "little") for s in subs)
    return _binary_filter_value(raw)


def _usable_sid(sid: str) -> bool:
    """A SID that can be searched for; a malformed one from a server is skipped, not fatal."""
    try:
        sid_filter_value(sid)
    except DirectoryRejected:
        return False
    return True


def _binary_filter_value(raw: bytes) -> str:
    """Bytes as an LDAP filter value: every byte escaped, so nothing in it is filter syntax."""
    return "".join(f"\\{b:02x}" for b in raw)


@dataclass(frozen=True)
class DirectoryPrincipal:
    """A domain account or group found by SID."""

    sid: str
    dn: str
    name: str
    is_group: bool


@dataclass(frozen=True)
class DirectoryUser:
    """An AD user as jitad needs it: stable identifiers plus display fields."""

    dn: str
    sam_account_name: str
    upn: str
    display_name: str
    mail: str
    sid: str
    guid: str
    disabled: bool
    given_name: str = ""
    surname: str = ""


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


@dataclass(frozen=True)
class AccountFacts:
    """What a sealed account's seal is checked against: enabled or not, and when its password was set."""

    dn: str
    enabled: bool
    pwd_last_set: int


def escape_filter(value: str) -> str:
    """Escape a value for use inside an LDAP filter (RFC 4515)."""
    return escape_filter_chars(value)


def rdn(attr: str, value: str) -> str:
    """Build one escaped RDN, e.g. ``rdn("CN", "Admins, SRV01")`` → ``CN=Admins\\, SRV01``."""
    return f"{attr}={_escape_rdn_value(value)}"


def _escape_rdn_value(value: str) -> str:
    """RFC 4514 escaping of one value (ldap3's escape_rdn mangles a lone space and NUL)."""
    if not value:
        raise ValueError("an RDN value cannot be empty")
    last = len(value) - 1
    out = []
    for i, ch in enumerate(value):
        if ch == "\x00":
            out.append("\\00")
        elif ch in '\\,+"<>;=#' or (ch == " " and i in (0, last)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


_ATTR_TYPE = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)\s*")
_HEX = "0123456789abcdefABCDEF"


def _dn_parts(dn: str) -> list[tuple[str, str, str, int]]:
    """(attribute type, unescaped value, separator, its index) per RDN component, per RFC 4514.

    Values are compared unescaped because DCs spell them their own way: Samba returns
    ``\\3D`` where jitad wrote ``\\=``, and ``\\ `` for a trailing space.
    """
    parts, i, n = [], 0, len(dn)
    while True:
        eq = dn.find("=", i)
        m = _ATTR_TYPE.fullmatch(dn, i, eq) if eq >= 0 else None
        if not m:
            raise ValueError("expected an attribute type and '='")
        i = eq + 1
        while i < n and dn[i] == " ":
            i += 1
        raw, keep = bytearray(), 0  # keep: length up to the last byte that is not an unescaped space
        while i < n and dn[i] not in ",+;":
            if dn[i] == "\\":
                pair = dn[i + 1 : i + 3]
                if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                    raw += bytes.fromhex(pair)
                    i += 3
                elif i + 1 < n and dn[i + 1] in ' "#+,;<=>\\':
                    raw += dn[i + 1].encode()
                    i += 2
                else:
                    raise ValueError("bad escape")
                keep = len(raw)
            else:
                raw += dn[i].encode()
                if dn[i] != " ":
                    keep = len(raw)
                i += 1
        if not keep:
            raise ValueError("empty attribute value")
        sep = dn[i] if i < n else ""
        parts.append((m.group(1), raw[:keep].decode("utf-8"), sep, i))
        if not sep:
            return parts
        i += 1


def normalize_dn(dn: str) -> str:
    """A comparable form of a DN: types and values case-folded, escaping and spacing canonical."""
    try:
        parts = _dn_parts(dn)
    except ValueError as e:
        raise DirectoryRejected(f"not a valid DN: {dn!r}") from e
    return "".join(f"{a.lower()}={_escape_rdn_value(v.lower())}{sep and ','}" for a, v, sep, _ in parts)


def _domain_root(dn: str) -> str:
    """The root of the domain ``dn`` sits in (its trailing DC= RDNs, escaped), or "" if it has none."""
    tail = []
    for attr, value, _sep, _end in reversed(_dn_parts(dn)):
        if attr.lower() != "dc":
            break
        tail.append(f"{attr}={_escape_rdn_value(value)}")
    return ",".join(reversed(tail))


def escaped_dn(dn: str) -> str:
    """``dn`` with every value escaped the one canonical way (RFC 4514), case kept: what jitad sends.

    ``CN=x)(objectClass=*,OU=JIT,…`` goes out as ``CN=x)(objectClass\\=*,OU=JIT,…``.
    """
    try:
        if "\x00" in dn:
            raise ValueError("NUL")
        parts = _dn_parts(dn)
    except (TypeError, ValueError) as e:
        raise DirectoryRejected(f"not a valid DN: {dn!r}") from e
    return "".join(f"{a}={_escape_rdn_value(v)}{sep and (',' if sep == ';' else sep)}" for a, v, sep, _ in parts)


def split_dn(dn: str) -> tuple[str, str]:
    """(unescaped value of the first RDN, parent DN): ``CN=a\\,b,OU=x`` → (``a,b``, ``OU=x``)."""
    try:
        parts = _dn_parts(dn)
    except ValueError as e:
        raise DirectoryRejected(f"not a valid DN: {dn!r}") from e
    _type, value, sep, end = parts[0]
    if sep == "+":
        raise DirectoryRejected(f"a multi-valued first RDN cannot be split: {dn!r}")
    return value, dn[end + 1 :].strip()


def group_label(dn: str) -> str:
    """A group's name for a title: its first RDN value unescaped (``CN=Ops\\, SRV01,OU=…`` → ``Ops, SRV01``).

    Never cuts at an escaped comma, and decodes Samba's hex escapes (``\\2C``); a string that
    is not a DN comes back as it is.
    """
    try:
        parts = _dn_parts(dn)
    except (TypeError, ValueError):
        return str(dn)
    return parts[0][1]


@contextmanager
def translate(operation: str):
    """Turn ldap3's exceptions into the seam's own, transient or permanent."""
    try:
        yield
    except DirectoryError:
        raise
    except lx.LDAPOperationResult as e:
        detail = f"{operation}: {e.description} ({e.result}) {e.message or ''}".strip()
        if e.result in _TRANSIENT_RESULTS:
            raise DirectoryUnavailable(detail) from e
        if e.result == _NO_SUCH_OBJECT:
            raise DirectoryNotFound(detail) from e
        raise DirectoryRejected(detail) from e
    except (lx.LDAPCommunicationError, lx.LDAPResponseTimeoutError, lx.LDAPMaximumRetriesError, OSError) as e:
        raise DirectoryUnavailable(f"{operation}: {type(e).__name__}: {e}") from e
    except (lx.LDAPCertificateError, lx.LDAPSSLConfigurationError, lx.LDAPStartTLSError) as e:
        raise DirectoryUnavailable(f"{operation}: TLS failed: {e}") from e
    except lx.LDAPException as e:
        raise DirectoryRejected(f"{operation}: {type(e).__name__}: {e}") from e


class Directory:
    """A bound connection to one DC. Use :func:`connect` to get one; close it when done."""

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

    # -- reads -----------------------------------------------------------------------
    def _search(self, base: str, filt: str, scope=SUBTREE, attributes=None, operation="search") -> list[dict]:
        with translate(operation):
            self._conn.search(base, filt, scope, attributes=attributes or [])
        return [r for r in self._conn.response if r.get("type") == "searchResEntry"]

    @staticmethod
    def _to_user(entry: dict) -> DirectoryUser:
        a, raw = entry["attributes"], entry["raw_attributes"]

        def first(name):
            v = a.get(name)
            if isinstance(v, list):
                v = v[0] if v else ""
            return "" if v is None else str(v)

        uac = int(first("userAccountControl") or 0)
        sid = format_sid(raw["objectSid"][0]) if raw.get("objectSid") else ""
        guid = format_uuid_le(raw["objectGUID"][0]).strip("{}") if raw.get("objectGUID") else ""
        return DirectoryUser(
            dn=entry["dn"],
            sam_account_name=first("sAMAccountName"),
            upn=first("userPrincipalName"),
            display_name=first("displayName"),
            mail=first("mail"),
            sid=sid,
            guid=guid,
            disabled=bool(uac & _UF_ACCOUNTDISABLE),
            given_name=first("givenName"),
            surname=first("sn"),
        )

    def find_user(self, name: str) -> DirectoryUser:
        """Find one user by sAMAccountName (``jdoe``), ``DOMAIN\\jdoe`` or UPN (``jdoe@corp.example``)."""
        if not name or len(name) > 256:
            raise DirectoryRejected("a user name must be 1 to 256 characters")
        if "\x00" in name:  # Samba ends a filter value at NUL: "Administrator\x00x" would find Administrator
            raise DirectoryRejected("a user name cannot contain NUL")
        if "\\" in name and "@" not in name:
            name = name.split("\\", 1)[1]
        if "@" in name:
            # A UPN, explicit or implicit: AD accepts sam@<dns domain> for a user without one.
            local, _, suffix = name.rpartition("@")
            clause = f"(userPrincipalName={escape_filter(name)})"
            if suffix.lower() == self.domain_dns_name():
                clause = f"(|{clause}(&(!(userPrincipalName=*))(sAMAccountName={escape_filter(local)})))"
        else:
            clause = f"(sAMAccountName={escape_filter(name)})"
        filt = f"(&(objectCategory=person)(objectClass=user){clause})"
        entries = self._search(self.config.base_dn, filt, attributes=_USER_ATTRS, operation="find user")
        if not entries:
            raise DirectoryNotFound(f"no user {name!r} in {self.config.base_dn}")
        if len(entries) > 1:
            raise DirectoryRejected(f"{len(entries)} users match {name!r}")
        return self._to_user(entries[0])

    def domain_dns_name(self) -> str:
        """The DNS name of the domain the base DN sits in (DC=corp,DC=example → corp.example)."""
        return ".".join(v for t, v, _sep, _end in _dn_parts(self.config.base_dn) if t.lower() == "dc").lower()

    def find_user_by_guid(self, guid: str) -> DirectoryUser:
        """Find a user by objectGUID, which survives renames and moves."""
        try:
            raw = uuid.UUID(guid).bytes_le
        except ValueError as e:
            raise DirectoryRejected(f"not a GUID: {guid!r}") from e
        value = _binary_filter_value(raw)
        entries = self._search(self.config.base_dn, f"(objectGUID={value})", attributes=_USER_ATTRS, operation="find user")
        if not entries:
            raise DirectoryNotFound(f"no object with GUID {guid}")
        return self._to_user(entries[0])

    def group_exists(self, group_dn: str) -> bool:
        """True if ``group_dn`` names a group."""
        try:
            return bool(self._search(group_dn, "(objectClass=group)", BASE, operation="read group"))
        except DirectoryNotFound:
            return False

    def group_facts(self, dn: str) -> GroupFacts:
        """Whether ``dn`` exists and is a group, with its adminCount and objectSid (one base read).

        A DN that does not parse is refused here and never sent to the DC; one that does is
        sent with its values escaped.
        """
        try:
            entries = self._search(escaped_dn(dn), "(objectClass=*)", BASE,
                                   attributes=["objectClass", "adminCount", "objectSid"], operation="read group")
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
            protected_parents=self._protected_parents(entries[0]["dn"], sid) if is_group else (),
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

    def account_locked(self, user_dn: str) -> bool:
        """True if the DC computes the account as locked out (UF_LOCKOUT in the constructed flags)."""
        entries = self._search(user_dn, "(objectClass=user)", BASE, attributes=[_UAC_COMPUTED], operation="read account state")
        if not entries:
            raise DirectoryNotFound(f"no user {user_dn}")
        value = entries[0]["attributes"].get(_UAC_COMPUTED)
        value = value[0] if isinstance(value, list) and value else value
        return bool(int(value or 0) & _UF_LOCKOUT)

    def account_facts(self, user_dn: str) -> AccountFacts:
        """The account's enabled flag and pwdLastSet (a FILETIME), read back from the DC."""
        entries = self._search(user_dn, "(objectClass=user)", BASE, attributes=["userAccountControl", "pwdLastSet"],
                               operation="read account")
        if not entries:
            raise DirectoryNotFound(f"no user {user_dn}")
        a = entries[0]["attributes"]

        def number(name):
            v = a.get(name)
            v = v[0] if isinstance(v, list) and v else v
            if hasattr(v, "timestamp"):  # ldap3 may decode pwdLastSet as a datetime
                return int((v.timestamp() + 11644473600) * 10_000_000)
            return int(v or 0)

        return AccountFacts(dn=entries[0]["dn"], enabled=not number("userAccountControl") & _UF_ACCOUNTDISABLE,
                            pwd_last_set=number("pwdLastSet"))

    def _change_uac(self, user_dn: str, *, set_bits: int = 0, clear_bits: int = 0, operation: str) -> None:
        """Set and clear userAccountControl flags, read-modify-write (a no-op when already so)."""
        entries = self._search(user_dn, "(objectClass=user)", BASE, attributes=["userAccountControl"],
                               operation="read account")
        if not entries:
            raise DirectoryNotFound(f"no user {user_dn}")
        value = entries[0]["attributes"].get("userAccountControl")
        uac = int((value[0] if isinstance(value, list) and value else value) or 0)
        wanted = (uac | set_bits) & ~clear_bits
        if wanted != uac:
            with translate(operation):
                self._conn.modify(user_dn, {"userAccountControl": [(MODIFY_REPLACE, [wanted])]})

    def set_enabled(self, user_dn: str, enabled: bool) -> None:
        """Enable or disable a user account (the ACCOUNTDISABLE bit), verified by reading back."""
        if enabled:
            self._change_uac(user_dn, clear_bits=_UF_ACCOUNTDISABLE, operation="enable account")
        else:
            self._change_uac(user_dn, set_bits=_UF_ACCOUNTDISABLE, operation="disable account")
        if self.account_facts(user_dn).enabled != enabled:
            raise DirectoryRejected(f"{user_dn} is still {'disabled' if enabled else 'enabled'} after the change")

    def password_never_expires(self, user_dn: str) -> None:
        """Set DONT_EXPIRE_PASSWORD: a sealed password must not expire while nobody uses it."""
        self._change_uac(user_dn, set_bits=_UF_DONT_EXPIRE_PASSWD, operation="set password never expires")

    def unlock(self, user_dn: str) -> None:
        """Clear a lockout (lockoutTime = 0)."""
        with translate("unlock account"):
            self._conn.modify(user_dn, {"lockoutTime": [(MODIFY_REPLACE, [0])]})

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
            with translate("add member"):
                self._conn.modify(group_dn, {"member": [(MODIFY_ADD, [value])]}, controls=[_PERMISSIVE_MODIFY])
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
            with translate("remove members"):
                self._conn.modify(group_dn, {"member": [(MODIFY_DELETE, list(member_dns))]}, controls=[_PERMISSIVE_MODIFY])
            removed = set(member_dns)
        except DirectoryRejected as e:
            # One absent value fails the whole modify on Samba (53) and on AD without
            # permissive modify (16): fall back to one value at a time. Either way the
            # read-back below decides.
            if _result_code(e) not in (_UNWILLING_TO_PERFORM, _NO_SUCH_ATTRIBUTE):
                raise
            for dn in member_dns if len(member_dns) > 1 else ():
                try:
                    with translate("remove member"):
                        self._conn.modify(group_dn, {"member": [(MODIFY_DELETE, [dn])]}, controls=[_PERMISSIVE_MODIFY])
                    removed.add(dn)
                except DirectoryRejected as e2:
                    if _result_code(e2) not in (_UNWILLING_TO_PERFORM, _NO_SUCH_ATTRIBUTE):
                        raise
        still = {normalize_dn(d) for d in self.members_of(group_dn)} & {normalize_dn(d) for d in member_dns}
        if still:
            raise DirectoryRejected(f"{len(still)} member(s) still in {group_dn} after removing them")
        return removed

    def set_password(self, user_dn: str, password: str) -> None:
        """Reset a user's password (unicodePwd over the TLS session); never logged."""
        encoded = f'"{password}"'.encode("utf-16-le")
        with translate("set password"):
            self._conn.modify(user_dn, {"unicodePwd": [(MODIFY_REPLACE, [encoded])]})

    # -- provisioning (demo estate, tests, bench) -------------------------------------
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
            with translate("create OU"):
                self._conn.add(ou_dn, "organizationalUnit")
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
            with translate("create group"):
                self._conn.add(dn, "group", attrs)
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
            with translate("create user"):
                self._conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs)
        except DirectoryRejected as e:
            if _result_code(e) != _ENTRY_ALREADY_EXISTS or not self._exists(dn):
                raise  # 68 for a DN that is not there: the sAMAccountName is taken elsewhere
            return dn
        if password:
            self.set_password(dn, password)
            with translate("enable user"):
                self._conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [512])]})
        return dn

    def _exists(self, dn: str) -> bool:
        try:
            return bool(self._search(dn, "(objectClass=*)", BASE, operation="read back"))
        except DirectoryNotFound:
            return False

    def delete(self, dn: str) -> None:
        """Delete one leaf object; absent is fine."""
        try:
            with translate("delete"):
                self._conn.delete(dn)
        except DirectoryNotFound:
            pass


def member_ttl_value(member_dn: str, ttl_seconds: int) -> str:
    """The PAM-feature form of a member value: ``<TTL=seconds,DN>``."""
    if ttl_seconds < 1:
        raise ValueError("a TTL must be at least one second")
    return f"<TTL={int(ttl_seconds)},{member_dn}>"


def _result_code(e: DirectoryError) -> int | None:
    cause = e.__cause__
    return getattr(cause, "result", None)


def _tls(config: DirectoryConfig) -> Tls:
    try:
        return Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=config.ca_file,
            valid_names=list(config.tls_names) or None,
        )
    except lx.LDAPSSLConfigurationError as e:
        raise DirectoryMisconfigured(f"JITAD_LDAP_CA_FILE {config.ca_file!r} is unusable: {e}") from e


def _open(url: str, config: DirectoryConfig, tls: Tls, user: str, password: str) -> Connection:
    """Open a TLS connection to one DC and bind as ``user``; ldap3 errors propagate."""
    server = Server(url, tls=tls, connect_timeout=config.connect_timeout, get_info=DSA)
    conn = Connection(
        server,
        user=user,
        password=password,
        authentication=SIMPLE,
        raise_exceptions=True,
        receive_timeout=max(1, math.ceil(config.receive_timeout)),  # ldap3 packs it as an integer
        auto_range=True,
        # Never follow a referral: ldap3 would re-send this bind (the service account's password)
        # to whatever host the referral names, over plain LDAP if it says ldap://. A search from
        # a domain root gets them on real AD (DomainDnsZones, ForestDnsZones); jitad reads only
        # the entries of the DC it bound to.
        auto_referrals=False,
        check_names=False,
        return_empty_attributes=False,
    )
    try:
        conn.open()
        if config.start_tls and not url.lower().startswith("ldaps://"):
            conn.start_tls()
        conn.bind()
    except BaseException:
        conn.unbind()
        raise
    return conn


def bind_each(config: DirectoryConfig, user: str, password: str) -> tuple[Connection, str]:
    """Bind as ``user`` on the first DC that answers; DirectoryRejected if one refuses the bind.

    ldap3's ServerPool sleeps between rounds on its own clock; trying the URLs here keeps
    the deadline ours and names every DC that failed.
    """
    config.check()
    tls = _tls(config)
    failures = []
    for url in config.urls:
        started = time.monotonic()
        try:
            with translate(f"bind to {url}"):
                return _open(url, config, tls, user, password), url
        except DirectoryUnavailable as e:
            failures.append(f"{url}: {e} after {time.monotonic() - started:.1f}s")
    raise DirectoryUnavailable("no domain controller answered: " + "; ".join(failures))


def connect(config: DirectoryConfig | None = None) -> Directory:
    """Bind as jitad's service account to the first configured DC that answers."""
    config = config or DirectoryConfig.from_settings()
    try:
        conn, url = bind_each(config, config.bind_dn, config.bind_password)
    except DirectoryRejected as e:
        # The DC answered: bad bind credentials are ours to fix, not another DC's.
        raise DirectoryMisconfigured(str(e)) from e
    return Directory(conn, config, url)


_cached = threading.local()
_MAX_IDLE_SECONDS = 60.0


@contextmanager
def session(config: DirectoryConfig | None = None):
    """A bound Directory reused across calls in this thread (a worker process runs many tasks).

    A reused connection is checked with a root DSE read first; one that idled too long,
    failed that check, or raised during use is dropped and the next call binds afresh.
    """
    config = config or DirectoryConfig.from_settings()
    d, used_at = getattr(_cached, "entry", (None, 0.0))
    if d is not None and (d.config != config or time.monotonic() - used_at > _MAX_IDLE_SECONDS or not d.alive()):
        d.close()
        d = None
    if d is None:
        d = connect(config)
    _cached.entry = (None, 0.0)
    try:
        yield d
    except BaseException:
        d.close()
        raise
    _cached.entry = (d, time.monotonic())
