"""Helpers for elevation tests: independent AD read-back and grant polling."""
from django.utils import timezone
from ldap3 import BASE
from ldap3.utils.conv import escape_filter_chars

from jitad.elevation.models import Grant
from tests.support.waiting import wait_for


def ad_is_member(ldap_admin, group_dn: str, member_dn: str) -> bool:
    """Ask the DC over a connection of our own, not jitad's seam."""
    conn = ldap_admin()
    try:
        conn.search(group_dn, f"(member={escape_filter_chars(member_dn)})", BASE, attributes=["cn"])
        return bool(conn.entries)
    finally:
        conn.unbind()


def ad_user_dn(ldap_admin, base_dn: str, sam: str) -> str:
    conn = ldap_admin()
    try:
        conn.search(base_dn, f"(sAMAccountName={escape_filter_chars(sam)})", attributes=["cn"])
        return conn.entries[0].entry_dn
    finally:
        conn.unbind()


def wait_state(grant_id: int, *states, timeout: float = 30) -> Grant:
    return wait_for(
        lambda: Grant.objects.filter(id=grant_id, state__in=states).first(),
        timeout=timeout,
        message=f"grant {grant_id} to reach {states} (now {Grant.objects.filter(id=grant_id).values_list('state', 'last_error').first()})",
    )


def expire_now(grant_id: int) -> None:
    """Let the grant's time run out: the sweeper, not the test, does the rest."""
    Grant.objects.filter(id=grant_id).update(expires_at=timezone.now())


def ad_sid(ldap_admin, dn: str) -> str:
    """The objectSid of ``dn``, read over the test's own connection."""
    from ldap3.protocol.formatters.formatters import format_sid

    conn = ldap_admin()
    try:
        conn.search(dn, "(objectClass=*)", BASE, attributes=["objectSid"])
        return format_sid(conn.response[0]["raw_attributes"]["objectSid"][0])
    finally:
        conn.unbind()


def local_admin_entry(sid: str, path: str, cls: str = "Group") -> dict:
    """One member of a test host's local Administrators, as ADSI reports it."""
    return {"sid": sid, "path": path, "class": cls}
