"""Keep people's AD state current between logins.

A login mirrors a person's AD groups, and approver rights follow those groups. Without a
periodic refresh, someone removed from an approver group in AD would keep deciding
requests from a live session or through an API token until their next login, and a
person disabled in AD would keep a session. The refresh reads every linked account by
objectGUID (renames and moves do not matter), mirrors changed groups, and blocks in
jitad anyone AD has disabled, or has not found on two runs in a row: their API tokens
are revoked, pending requests cancelled and live grants revoked. Like a jitad block,
that is never undone automatically.
"""
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_record
from jitad.notifications.services import alert_raise

from .blocking import account_holdings_end
from .models import ApiToken, DirectoryAccount
from .services import AccountConflict, account_groups_set, account_sync_from_directory

log = logging.getLogger(__name__)
ACTOR = "system:directory-sync"


@dataclass
class _Seen:
    link: DirectoryAccount
    entry: directory.DirectoryUser | None  # None: AD has no such object any more
    groups: list[str]
    error: str = ""  # the DC refused or failed this one account: leave it as it is


def _read(links: list[DirectoryAccount]) -> list[_Seen]:
    """One directory session: each account by GUID, and its nested groups if it is enabled.

    A failure reading one account is recorded for that account only; a DC that stops
    answering ends the run (DirectoryUnavailable) before anything is written.
    """
    seen = []
    with directory.connect() as d:
        for link in links:
            try:
                entry = d.find_user_by_guid(link.guid)
                seen.append(_Seen(link, entry, [] if entry.disabled else d.groups_of(entry.dn)))
            except directory.DirectoryNotFound:
                seen.append(_Seen(link, None, []))
            except directory.DirectoryUnavailable:
                raise
            except directory.DirectoryError as e:
                seen.append(_Seen(link, None, [], error=str(e)))
    return seen


def account_block_from_directory(*, link: DirectoryAccount, why: str) -> None:
    """Block a person AD has removed or disabled: inactive, tokens revoked, pending requests
    cancelled, live grants revoked, break-glass checkouts ended, and an alert."""
    user = link.user
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        tokens = ApiToken.objects.live().filter(user=user).update(revoked_at=timezone.now())
        audit_record(actor=ACTOR, action="account.blocked", object_type="user", object_id=user.pk, before="active",
                     after="blocked", reason=why, data={"dn": link.dn, "api_tokens_revoked": tokens})
        # Elevation and break-glass answer (jitad.accounts.blocking): pending requests
        # cancelled, then live grants revoked, then break-glass checkouts ended.
        ended = account_holdings_end(user=user, actor=ACTOR, reason=why)
        cancelled, revoked = ended["requests_cancelled"], ended["grants_revoked"]
        checkouts = ended["checkouts_ended"]
        alert_raise(
            event="account.blocked",
            subject=f"{user.get_username()} blocked in jitad: {why}",
            body=(f"AD reports the account {link.dn} as {why}. jitad blocked {user.get_username()}, "
                  f"revoked {tokens} API token(s), cancelled {cancelled} pending request(s) and is removing "
                  f"{revoked} live grant(s) and ended {checkouts} break-glass checkout(s). Re-enable the person in the jitad admin only once AD has them back."),
            object_type="user",
            object_id=user.pk,
        )


def _missing(link: DirectoryAccount, counts: dict) -> None:
    """Not found: block on the second run in a row that misses it, warn on the first."""
    if link.missing_since is None:
        DirectoryAccount.objects.filter(pk=link.pk).update(missing_since=timezone.now())
        alert_raise(event="account.missing", subject=f"{link.user.get_username()} not found in AD",
                    body=(f"The directory sync did not find {link.dn} (objectGUID {link.guid}). If the next sync "
                          "does not find it either, jitad blocks the person."),
                    object_type="user", object_id=link.user.pk)
        counts["missing"] += 1
        return
    account_block_from_directory(link=link, why="removed from AD")
    counts["blocked"] += 1


def _groups_only(link: DirectoryAccount, groups: list[str], error: AccountConflict, counts: dict) -> None:
    """AD renamed the account to a name jitad cannot take: keep the old name, but the groups
    (and so the approver rights) must still follow AD, and someone must sort the name out."""
    with transaction.atomic():
        account_groups_set(user=link.user, groups=groups, actor=ACTOR)
        DirectoryAccount.objects.filter(pk=link.pk).update(groups=sorted(groups), synced_at=timezone.now())
        alert_raise(event="account.conflict", subject=f"{link.user.get_username()}: AD name conflict",
                    body=f"The directory sync could not rename {link.user.get_username()} ({link.dn}): {error}. "
                         "Their groups were updated; resolve the name clash in the jitad admin.",
                    object_type="user", object_id=link.user.pk)
    counts["conflicts"] += 1


def accounts_refresh_from_directory() -> dict[str, int]:
    """Refresh every active AD-linked person; returns counts of what changed.

    Raises DirectoryUnavailable when no DC answers (the task tries again next time).
    Groups are compared with the person's Django groups, the ones approver rights are
    read from, so a hand-made change in the admin is undone too.
    """
    links = list(DirectoryAccount.objects.select_related("user").filter(user__is_active=True).order_by("synced_at"))
    counts = {"checked": len(links), "groups_changed": 0, "blocked": 0, "missing": 0, "conflicts": 0, "errors": 0}
    for item in _read(links):
        link, entry = item.link, item.entry
        if item.error:
            log.warning("directory sync could not read %s: %s", link.dn, item.error)
            DirectoryAccount.objects.filter(pk=link.pk).update(synced_at=timezone.now())  # to the back of the queue
            counts["errors"] += 1
            continue
        if entry is None:
            _missing(link, counts)
            continue
        if entry.disabled:
            account_block_from_directory(link=link, why="disabled in AD")
            counts["blocked"] += 1
            continue
        mirrored = {g.lower() for g in link.user.groups.values_list("name", flat=True)}
        same_groups = {g.lower() for g in item.groups} == mirrored
        if same_groups and entry.dn == link.dn and entry.sam_account_name.lower() == link.user.username:
            DirectoryAccount.objects.filter(pk=link.pk).update(synced_at=timezone.now(), missing_since=None)
            continue
        try:
            account_sync_from_directory(entry=entry, groups=item.groups)
        except AccountConflict as e:
            _groups_only(link, item.groups, e, counts)
        DirectoryAccount.objects.filter(pk=link.pk).update(missing_since=None)
        counts["groups_changed"] += int(not same_groups)
    return counts
