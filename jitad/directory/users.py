"""The user-account verbs of :class:`~jitad.directory.client.Directory`: find, read state, enable, unlock, reset.

A mixin, so one bound connection serves every verb; ``Directory`` (client.py) holds the
connection and ``_search``.
"""
import uuid
from dataclasses import dataclass

from ldap3 import BASE, MODIFY_REPLACE
from ldap3.protocol.formatters.formatters import format_sid, format_uuid_le

from .dn import _binary_filter_value, _dn_parts, escape_filter
from .errors import DirectoryNotFound, DirectoryRejected

_UF_ACCOUNTDISABLE = 0x2
_UF_LOCKOUT = 0x10
_UF_DONT_EXPIRE_PASSWD = 0x10000
_UAC_COMPUTED = "msDS-User-Account-Control-Computed"
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
class AccountFacts:
    """What a sealed account's seal is checked against: enabled or not, and when its password was set."""

    dn: str
    enabled: bool
    pwd_last_set: int


class UserVerbs:
    """Finding users and reading or changing their account state (mixed into Directory)."""

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

    def own_accounts(self, *, principal: str = "") -> list[DirectoryUser]:
        """jitad's own accounts as the DC knows them: the one its bind names (JITAD_LDAP_BIND_DN, a DN, or a UPN or
        DOMAIN\\name as a simple bind also takes) and the one its Kerberos ``principal`` (name@REALM) logs on as: the
        account with that userPrincipalName or with the name as sAMAccountName, or for a service principal
        (HTTP/host@REALM) the account holding it. Whatever is not found is left out; never raises DirectoryNotFound."""
        found: list[DirectoryUser] = []
        clauses = []
        bind = self.config.bind_dn.strip()
        if bind and "=" in bind:
            try:
                entries = self._search(bind, "(objectClass=user)", BASE, attributes=_USER_ATTRS,
                                       operation="read jitad's bind account")
            except DirectoryRejected:  # not a DN after all, or no such entry (DirectoryNotFound)
                entries = []
            found += [self._to_user(e) for e in entries]
        elif bind and "\x00" not in bind:
            if "@" in bind:
                clauses.append(f"(userPrincipalName={escape_filter(bind)})")
            else:
                clauses.append(f"(sAMAccountName={escape_filter(bind.rsplit(chr(92), 1)[-1])})")
        name = principal.rsplit("@", 1)[0] if "@" in principal else ""
        if name and "\x00" not in principal:
            if "/" in name:
                clauses.append(f"(servicePrincipalName={escape_filter(name)})")
            else:
                clauses.append(f"(userPrincipalName={escape_filter(principal)})(sAMAccountName={escape_filter(name)})")
        if clauses:
            entries = self._search(self.config.base_dn, f"(&(objectClass=user)(|{''.join(clauses)}))",
                                   attributes=_USER_ATTRS, operation="find jitad's own account")
            found += [self._to_user(e) for e in entries]
        return found

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
            self._write(operation, lambda conn: conn.modify(user_dn, {"userAccountControl": [(MODIFY_REPLACE, [wanted])]}))

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
        self._write("unlock account", lambda conn: conn.modify(user_dn, {"lockoutTime": [(MODIFY_REPLACE, [0])]}))

    def set_password(self, user_dn: str, password: str) -> None:
        """Reset a user's password (unicodePwd over the TLS session); never logged."""
        encoded = f'"{password}"'.encode("utf-16-le")
        self._write("set password", lambda conn: conn.modify(user_dn, {"unicodePwd": [(MODIFY_REPLACE, [encoded])]}))
