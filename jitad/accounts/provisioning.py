"""Operators pre-provision people: the portal user made from their AD account before their first login.

Onboarding a team at once: the users exist (names, e-mail, AD groups, so approvers and
eligibility are right from the start) and each can be issued an enrolment code
(jitad/accounts/enrolment.py) in the same step, to hand over out of band. Nothing here
sets a password or an MFA device: the person still logs in with their own AD password and
enrols their own authenticator.
"""
from dataclasses import dataclass

from jitad import directory

from .backends import MESSAGES, portal_login_refusal
from .models import DirectoryAccount
from .services import AccountConflict, account_sync_from_directory


class ProvisionRefused(Exception):
    """An AD account cannot be provisioned (not found, disabled, sealed, a local account holds its name)."""


@dataclass
class Provisioned:
    user: object
    created: bool


def account_provision(*, name: str, actor: str) -> Provisioned:
    """Create (or refresh) the portal user of the AD account ``name`` (sAMAccountName, DOMAIN\\name or UPN).

    Read with jitad's service account; audited as ``account.created`` / ``account.synced`` by
    ``actor``. Refused, with the reason, for an account AD has disabled, one a higher app seals
    (a break-glass account never becomes a person here) and a name a local account holds.
    Raises DirectoryUnavailable when no DC answers.
    """
    try:
        with directory.connect() as d:
            entry = d.find_user(name.strip())
            groups = [] if entry.disabled else d.groups_of(entry.dn)
    except directory.DirectoryNotFound:
        raise ProvisionRefused(f"AD has no user {name.strip()!r}") from None
    except directory.DirectoryRejected as e:
        raise ProvisionRefused(str(e)) from None
    if entry.disabled:
        raise ProvisionRefused(f"{entry.sam_account_name} is disabled in AD")
    code = portal_login_refusal(entry)
    if code:
        raise ProvisionRefused(f"{entry.sam_account_name}: {MESSAGES.get(code, code)}")
    existed = DirectoryAccount.objects.filter(guid=entry.guid).exists()
    try:
        user = account_sync_from_directory(entry=entry, groups=groups, actor=actor)
    except AccountConflict as e:
        raise ProvisionRefused(str(e)) from None
    return Provisioned(user=user, created=not existed)

