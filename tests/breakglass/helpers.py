"""Helpers for break-glass tests: binds over the test's own connection, waiting for states, secrets in the DB."""
import ssl

from ldap3 import BASE, Connection, Server, Tls

from jitad.breakglass.models import Checkout, SealedAccount
from jitad.breakglass.vault import secret_open
from tests.support.waiting import wait_for


def ad_bind(samba_dc, dn: str, password: str) -> str:
    """Bind as ``dn`` over a connection of the test's own: "ok", or the DC's data code ("52e" wrong, "533" disabled)."""
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=samba_dc.ca_file, valid_names=[samba_dc.tls_name])
    conn = Connection(Server(samba_dc.ldaps_url, tls=tls, connect_timeout=5), dn, password, raise_exceptions=False,
                      receive_timeout=10)
    try:
        if conn.bind():
            return "ok"
        message = conn.result.get("message", "")
        return message.split("data ", 1)[1][:3] if "data " in message else f"refused {conn.result.get('result')}"
    finally:
        conn.unbind()


def ad_enabled(ldap_admin, dn: str) -> bool:
    conn = ldap_admin()
    try:
        conn.search(dn, "(objectClass=user)", BASE, attributes=["userAccountControl"])
        return not int(conn.entries[0].userAccountControl.value) & 2
    finally:
        conn.unbind()


def ad_set_password(ldap_admin, dn: str, password: str) -> None:
    """Change a password behind jitad's back."""
    from ldap3 import MODIFY_REPLACE

    conn = ldap_admin()
    try:
        assert conn.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])]}), conn.result
    finally:
        conn.unbind()


def wait_account(pk: int, *states, timeout: float = 30) -> SealedAccount:
    return wait_for(
        lambda: SealedAccount.objects.filter(pk=pk, state__in=states).first(), timeout=timeout,
        message=f"account {pk} to reach {states} "
                f"(now {SealedAccount.objects.filter(pk=pk).values_list('state', 'last_error').first()})",
    )


def wait_checkout(pk: int, *states, timeout: float = 30) -> Checkout:
    return wait_for(
        lambda: Checkout.objects.filter(pk=pk, state__in=states).first(), timeout=timeout,
        message=f"checkout {pk} to reach {states} "
                f"(now {Checkout.objects.filter(pk=pk).values_list('state', 'last_error').first()})",
    )


def stored_password(account: SealedAccount) -> str:
    """The password jitad holds now (the test opens the vault; people never can)."""
    account.refresh_from_db()
    return secret_open(ref=account.vault_ref, token=account.secret)
