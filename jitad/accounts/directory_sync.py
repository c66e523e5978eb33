"""Keep people's AD state current between logins.

A login mirrors a person's AD groups, and approver rights follow those groups. Without a
periodic refresh, someone removed from an approver group in AD would keep deciding
requests from a live session or through an API token until their next login, and a
person disabled in AD would keep a session. The refresh reads every linked account by
objectGUID (renames and moves do not matter), mirrors changed groups, and blocks in
jitad anyone AD no longer has or has disabled: their API tokens are revoked and their
live grants revoked. Like a jitad block, that is never undone automatically.
"""
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_record
from jitad.notifications.services import alert_raise

from .models import ApiToken, DirectoryAccount
from .services import AccountConflict, account_sync_from_directory

log = logging.getLogger(__name__)
ACTOR = "system:directory-sync"


@dataclass
class _Seen:
    link: DirectoryAccount
    entry: directory.DirectoryUser | None  # None: AD has no such object any more
    groups: list[str]


def _read(links: list[DirectoryAccount]) -> list[_Seen]:
    """One directory session: each account by GUID, and its nested groups if it is enabled."""
    seen = []
    with directory.connect() as d:
        for link in links:
            try:
                entry = d.find_user_by_guid(link.guid)
            except directory.DirectoryNotFound:
                seen.append(_Seen(link, None, []))
                continue
            seen.append(_Seen(link, entry, [] if entry.disabled else d.groups_of(entry.dn)))
    return seen


def account_block_from_directory(*, link: DirectoryAccount, why: str) -> None:
    """Block a person AD has removed or disabled: inactive, tokens revoked, live grants revoked."""
    from jitad.elevation.services.grants import grants_revoke_for_user

    user = link.user
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        tokens = ApiToken.objects.live().filter(user=user).update(revoked_at=timezone.now())
        audit_record(actor=ACTOR, action="account.blocked", object_type="user", object_id=user.pk, before="active",
                     after="blocked", reason=why, data={"dn": link.dn, "api_tokens_revoked": tokens})
        revoked = grants_revoke_for_user(user=user, actor=ACTOR, comment=why)
        alert_raise(
            event="account.blocked",
            subject=f"{user.get_username()} blocked in jitad: {why}",
            body=(f"AD reports the account {link.dn} as {why}. jitad blocked {user.get_username()}, "
                  f"revoked {tokens} API token(s) and is removing {revoked} live grant(s). "
                  "Re-enable the person in the jitad admin only once AD has them back."),
            object_type="user",
            object_id=user.pk,
        )


def accounts_refresh_from_directory() -> dict[str, int]:
    """Refresh every active AD-linked person; returns counts of what changed.

    Raises DirectoryUnavailable when no DC answers (the task tries again next time).
    """
    links = list(DirectoryAccount.objects.select_related("user").filter(user__is_active=True).order_by("synced_at"))
    counts = {"checked": len(links), "groups_changed": 0, "blocked": 0, "conflicts": 0}
    for item in _read(links):
        link, entry = item.link, item.entry
        if entry is None or entry.disabled:
            account_block_from_directory(link=link, why="removed from AD" if entry is None else "disabled in AD")
            counts["blocked"] += 1
            continue
        same_groups = sorted(item.groups, key=str.lower) == sorted(link.groups or [], key=str.lower)
        if same_groups and entry.dn == link.dn and entry.sam_account_name.lower() == link.user.username:
            DirectoryAccount.objects.filter(pk=link.pk).update(synced_at=timezone.now())
            continue
        try:
            account_sync_from_directory(entry=entry, groups=item.groups)
        except AccountConflict as e:
            log.warning("directory sync skipped %s: %s", link.dn, e)
            counts["conflicts"] += 1
            continue
        counts["groups_changed"] += int(not same_groups)
    return counts
