"""Which AD accounts may be sealed: never jitad's own (sealing it would lock jitad out), a person's portal login,
krbtgt, or an account already sealed under another name. Asked before every rotation, as the DC answers now."""
from django.conf import settings

from jitad import directory
from jitad.accounts.models import DirectoryAccount

from ..models import SealedAccount


def _own_kerberos_names() -> set[str]:
    """The sAMAccountName jitad logs on as with Kerberos (JITAD_KERBEROS_PRINCIPAL's name before the realm), lowered:
    with a Kerberos bind there is no bind DN to compare, and sealing that account would lock jitad out too."""
    principal = settings.JITAD_KERBEROS_PRINCIPAL
    name = principal.rsplit("@", 1)[0] if principal else ""
    return {name.lower()} if name and "/" not in name else set()


def _is_own_account(user: directory.DirectoryUser, d: directory.Directory) -> bool:
    """Whether ``user`` is an account jitad itself logs on as: by its objectSid or objectGUID against the accounts the
    DC finds for jitad's bind and Kerberos principal, and by name (the bind DN, the principal as a UPN, its name as a
    sAMAccountName) should the DC find none."""
    principal = settings.JITAD_KERBEROS_PRINCIPAL.strip()
    for own in d.own_accounts(principal=principal):
        if (own.sid and own.sid == user.sid) or (own.guid and own.guid.lower() == user.guid.lower()):
            return True
    bind_dn = d.config.bind_dn.strip()  # empty with a Kerberos bind
    if bind_dn and "=" in bind_dn:
        try:
            if directory.normalize_dn(user.dn) == directory.normalize_dn(bind_dn):
                return True
        except directory.DirectoryRejected:  # not a DN: a UPN or DOMAIN\name, found by own_accounts
            pass
    elif bind_dn and {bind_dn.lower(), bind_dn.rsplit("\\", 1)[-1].lower()} & {user.upn.lower(),
                                                                         user.sam_account_name.lower()}:
        return True
    if principal and user.upn and user.upn.lower() == principal.lower():
        return True
    return user.sam_account_name.lower() in _own_kerberos_names()


def account_sealable_check(user: directory.DirectoryUser, d: directory.Directory, account: SealedAccount) -> None:
    """Accounts that must never be sealed: jitad's own bind or Kerberos account (it would lock jitad out), a person's
    portal login, krbtgt (RID 502), and one already enrolled under another name."""
    if _is_own_account(user, d):
        raise directory.DirectoryRejected(f"{user.sam_account_name} is jitad's own bind account and cannot be sealed")
    if user.sid.endswith("-502") or user.sam_account_name.lower().startswith("krbtgt"):
        raise directory.DirectoryRejected(f"{user.sam_account_name} is a Kerberos service account and cannot be sealed")
    if user.guid and DirectoryAccount.objects.filter(guid__iexact=user.guid).exists():
        raise directory.DirectoryRejected(f"{user.sam_account_name} is a person's portal login and cannot be sealed")
    if user.guid and SealedAccount.objects.filter(user_guid__iexact=user.guid).exclude(pk=account.pk).exists():
        raise directory.DirectoryRejected(f"{user.sam_account_name} is already sealed under another name")
