"""Read-back and setup helpers for the directory tests: plain ldap3, never jitad's seam."""
import itertools
import ssl
import uuid

from ldap3 import BASE, Connection, Server, Tls
from ldap3.utils.conv import escape_filter_chars

_unique = itertools.count(1)


def unique_tag() -> str:
    """A short tag no other object in this session (and this DC) has."""
    return f"{next(_unique)}{uuid.uuid4().hex[:4]}"


def user_bind(samba_dc, dn: str, password: str) -> bool:
    """A simple bind as ``dn`` over LDAPS with the DC's CA: True if the DC accepts it."""
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=samba_dc.ca_file, valid_names=[samba_dc.tls_name])
    conn = Connection(Server(samba_dc.ldaps_url, tls=tls, connect_timeout=5), dn, password, receive_timeout=10)
    try:
        return conn.bind()
    finally:
        conn.unbind()


def ad_members(admin, group_dn: str) -> list[str]:
    """The group's member values as the DC stores them, read without jitad."""
    assert admin.search(group_dn, "(objectClass=group)", BASE, attributes=["member"]), admin.result
    return list(admin.entries[0].entry_attributes_as_dict.get("member", []))


def ad_has_member(admin, group_dn: str, member_dn: str) -> bool:
    """Ask the DC itself (DN matching is the DC's, not ours) whether member_dn is a direct member."""
    admin.search(group_dn, f"(member={escape_filter_chars(member_dn)})", BASE, attributes=["cn"])
    return len(admin.entries) == 1


def ad_entry(admin, dn: str, *attributes: str):
    """Read one entry by DN without jitad; None if it does not exist."""
    if not admin.search(dn, "(objectClass=*)", BASE, attributes=list(attributes) or ["cn"]):
        return None
    return admin.entries[0]


def ad_add(admin, dn: str, object_class, attributes: dict | None = None) -> str:
    """Create an object without jitad (so tests can make shapes jitad's ensure_* never would)."""
    assert admin.add(dn, object_class, attributes or {}), (dn, admin.result)
    return dn
