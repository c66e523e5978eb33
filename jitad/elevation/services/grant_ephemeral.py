"""Ephemeral accounts: an AD user created for one grant, shown once to its holder, disabled and deleted at its end.

The life of an ephemeral account (docs/ephemeral.md), each step claimed work on the grant:

* **planned** when the grant is created: its name (``<user>-<random suffix>``) and DN are
  reserved on the grant before anything exists in AD, so the reconciler never takes the
  account for an orphan;
* **created** by the apply (``ephemeral_account_ready``): the password is generated and sealed
  on the grant first (committed), then the account is created with it, then added to the
  group. A retry that finds the account half-made by an earlier attempt (its ``info`` names
  this grant) deletes it and creates it again; an account of that name that is not this
  grant's is never taken over;
* **disabled** by the revocation, before it leaves the group (``ephemeral_account_disable``);
* its sessions on the server are ended by the server's revocation check;
* **deleted** by the sweep once that check is done (``ephemeral_accounts_delete_execute``),
  verified on every configured DC: the grant's account is not called deleted while any DC
  still has it (replication), and the sealed password is erased.

The password is shown once, to the holder, after a fresh MFA step (``grant_account_reveal``),
and erased from the grant then. An account in an ephemeral OU that no grant owns is
disabled, deleted and alerted by the reconciler (``ephemeral_orphans_reconcile``).
"""
import logging
import secrets
import string
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from jitad import directory, vault
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.engine import claims
from jitad.humantime import when
from jitad.notifications.models import Notification
from jitad.notifications.services import alert_raise
from jitad.vault.passwords import password_generate

from ..errors import RequestRefused
from ..models import Grant, Policy, Target
from ..selectors.ephemeral import account_ou, ephemeral_backed, ephemeral_config, ephemeral_ous, ephemeral_settings
from .grant_work import _admin_link, _entry, _taken

log = logging.getLogger(__name__)
Account = Grant.Account
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


# -- planning (when the grant is created) ------------------------------------------------------------

def ephemeral_plan(*, target: Target, policy: Policy, username: str) -> dict:
    """The Grant fields that reserve an ephemeral account for a new grant ({} when none is used).

    The name is ``<user>-<suffix>`` with a random suffix no earlier grant used (``jit-<suffix>``
    for a user name with nothing AD takes in a name); the DN is ``CN=<name>,<the ephemeral OU>``.
    """
    config = ephemeral_config(target=target, policy=policy)
    if config is None:
        return {}
    for _ in range(20):
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(config["suffix_length"]))
        try:
            sam = directory.ephemeral_sam(username, suffix)
        except ValueError:  # a name with no letter or digit AD would take (e.g. only non-Latin letters)
            sam = directory.ephemeral_sam("jit", suffix)
        if not Grant.objects.filter(account_sam=sam).exists():
            return {"account": Account.PLANNED, "account_sam": sam,
                    "account_dn": f"{directory.rdn('CN', sam)},{config['ou']}"}
    raise IntegrityError(f"no free ephemeral account name for {username!r} after 20 tries")


def _ref(g: Grant) -> str:
    return f"grant-account:{g.pk}"


def _marker(g: Grant) -> str:
    """The ``info`` an ephemeral account carries: which grant it belongs to (read back on a retry)."""
    return f"jitad grant #{g.pk}"


def _account_entry(g: Grant, action: str, before: str, after: str, reason: str = "", **data) -> AuditEntry:
    return _entry(g, actor="system:engine", action=action, before=before, after=after, reason=reason,
                  account=g.account_sam, account_dn=g.account_dn, **data)


# -- creation (the apply) ----------------------------------------------------------------------------

@sensitive_variables("password")
def ephemeral_account_ready(d: directory.Directory, g: Grant, mine: uuid.UUID) -> str | None:
    """The DN to add to the group for ``g``: its ephemeral account, created now if it is only planned.

    None when the claim was lost meanwhile (the current holder decides). DirectoryError when
    AD refuses; an account of the planned name that is not this grant's is refused for good.
    """
    if g.account == Account.CREATED:
        return g.account_dn
    if g.account != Account.PLANNED:
        raise directory.DirectoryRejected(f"grant #{g.pk}'s ephemeral account is {g.account}; it is not created again")
    config = ephemeral_config(target=g.target, policy=g.request.policy) or ephemeral_settings({"ou": account_ou(g.account_dn)})
    if g.account_secret:
        password = vault.unseal(ref=_ref(g), token=g.account_secret).decode()
    else:
        password = password_generate(length=config["password"]["length"], classes=config["password"]["classes"],
                                     avoid=g.account_sam)
        sealed = vault.seal(ref=_ref(g), plaintext=password.encode())
        # Sealed and committed before the account exists: no account in AD whose password jitad lost.
        if not Grant.objects.filter(id=g.id, claim_token=mine).update(account_secret=sealed):
            return None
        g.account_secret = sealed
    existing = d.ephemeral_read(g.account_dn)
    if existing is not None:
        if existing.info != _marker(g):
            raise directory.DirectoryRejected(
                f"an account {g.account_dn} exists that is not grant #{g.pk}'s ephemeral account; it is not taken over")
        d.ephemeral_delete(g.account_dn)  # half-made by an earlier attempt of this grant: start again
    user = d.ephemeral_create(
        ou_dn=account_ou(g.account_dn), sam=g.account_sam, password=password, info=_marker(g),
        description=f"jitad ephemeral admin account of {g.user.get_username()} on {g.target.name} until "
                    f"{g.expires_at:%Y-%m-%d %H:%M} UTC",
    )
    with transaction.atomic():
        done = Grant.objects.filter(id=g.id, claim_token=mine, account=Account.PLANNED).update(
            account=Account.CREATED, account_dn=user.dn, account_sid=user.sid)
        if done:
            g.account, g.account_dn, g.account_sid = Account.CREATED, user.dn, user.sid
            audit_record_many([_account_entry(g, "grant.account_created", Account.PLANNED, Account.CREATED,
                                              account_sid=user.sid)])
    return g.account_dn if done else None


# -- disabling (the revocation) ----------------------------------------------------------------------

def ephemeral_account_disable(d: directory.Directory, g: Grant) -> bool:
    """Disable ``g``'s ephemeral account before it leaves the group; True if this call disabled it."""
    if g.account not in (Account.PLANNED, Account.CREATED) or not g.account_dn:
        return False
    return d.ephemeral_disable(g.account_dn)


def ephemeral_accounts_mark_disabled(grants: list[Grant]) -> list[AuditEntry]:
    """In the revocation's transaction: the grants' ephemeral accounts are disabled (or never existed)."""
    ended = [g for g in grants if g.account in (Account.PLANNED, Account.CREATED)]
    if not ended:
        return []
    Grant.objects.filter(id__in=[g.id for g in ended]).update(account=Account.DISABLED)
    entries = [_account_entry(g, "grant.account_disabled", g.account, Account.DISABLED) for g in ended]
    for g in ended:
        g.account = Account.DISABLED
    return entries


# -- deletion (the sweep, after the server's check) ----------------------------------------------------

def ephemeral_accounts_delete_execute(*, grant_ids: list[int], token) -> None:
    """Delete the claimed grants' ephemeral accounts, each verified gone on every configured DC."""
    with _taken(grant_ids, token) as (grants, mine):
        for g in grants:
            _delete_one(g, mine)


def _delete_one(g: Grant, mine: uuid.UUID) -> None:
    if g.state != Grant.State.REVOKED or g.account in ("", Account.DELETED):
        claims.release(Grant, [g.id], mine)
        return
    try:
        with directory.session() as d:
            deleted = d.ephemeral_delete(g.account_dn)
        states = directory.ephemeral_state_each(g.account_dn)
    except directory.DirectoryError as e:
        _delete_failed(g, mine, f"{type(e).__name__}: {e}", transient=e.transient)
        return
    except Exception as e:  # a bug must be loud and bounded too
        log.exception("grant %s: unexpected error while deleting its ephemeral account", g.id)
        _delete_failed(g, mine, f"unexpected {type(e).__name__}: {e}", transient=False)
        return
    left = {url: state for url, state in states.items() if state != "gone"}
    if left:  # replication has not reached every DC yet, or one did not answer: ask again later
        _delete_failed(g, mine, "still there on " + "; ".join(f"{url} ({s})" for url, s in left.items()), transient=True)
        return
    now = timezone.now()
    with transaction.atomic():
        done = Grant.objects.filter(id=g.id, claim_token=mine).update(
            account=Account.DELETED, account_deleted_at=now, account_secret="", claim_token=None, lease_until=None,
            attempts=0, next_attempt_at=None, last_error="")
        if done:
            audit_record_many([_account_entry(g, "grant.account_deleted", g.account, Account.DELETED,
                                              deleted_now=deleted, dcs=sorted(states))])
            if g.account == Account.DELETE_FAILED:
                alert_raise(
                    event="grant.account_deleted", severity=Notification.Severity.INFO,
                    subject=f"Resolved: ephemeral account {g.account_sam} deleted (grant #{g.pk})",
                    body=f"The ephemeral account {g.account_dn} of grant #{g.pk} is gone from every domain controller.",
                    link=_admin_link(g), object_type="grant", object_id=g.pk,
                )
    log.info("grant %s: ephemeral account %s deleted on %d DC(s)", g.id, g.account_dn, len(states))


def _delete_failed(g: Grant, token: uuid.UUID, error: str, *, transient: bool) -> None:
    """Retry with the engine's backoff; past the last attempt, ``delete_failed``, alerted, and still retried."""

    def mark(row: Grant, exhausted: bool, now) -> list[str]:
        if exhausted:
            row.account = Account.DELETE_FAILED
        return ["account"]

    def report(failures: list[claims.Failed]) -> None:
        for f in failures:
            row = f.row
            gave_up = row.account == Account.DELETE_FAILED and f.before != Account.DELETE_FAILED
            audit_record_many([_account_entry(row, "grant.account_delete_failed", f.before, row.account,
                                              reason=row.last_error, attempts=row.attempts)])
            if gave_up:
                alert_raise(
                    event="grant.account_delete_failed", severity=Notification.Severity.CRITICAL,
                    subject=f"Ephemeral account {row.account_sam} not deleted (grant #{row.pk})",
                    body=(f"Grant #{row.pk} ended, and its ephemeral account {row.account_dn} was disabled, but it "
                          f"could not be deleted after {row.attempts} attempt(s): {row.last_error}\n"
                          f"jitad keeps trying, next {when(row.next_attempt_at)}. Check the account is disabled on "
                          "every domain controller."),
                    link=_admin_link(row), object_type="grant", object_id=row.pk,
                )

    claims.attempt_failed(Grant.objects.select_related("user", "target"), [g.id], token, error=error,
                          transient=transient, mark=mark, report=report, state_field="account")
    log.warning("grant %s: ephemeral account %s not deleted yet: %s", g.id, g.account_dn, error)


# -- the holder sees the password, once ---------------------------------------------------------------

@sensitive_variables("password")
def grant_account_reveal(*, grant: Grant, actor) -> str:
    """The ephemeral account's password, once, to the grant's holder; then erased from the grant. Audited."""
    with transaction.atomic():
        g = Grant.objects.select_for_update(of=("self",)).select_related("user", "target").get(pk=grant.pk)
        if g.user_id != actor.pk:
            raise RequestRefused("not_holder", "Only the person this access was granted to sees its password.")
        if g.account_revealed_at is not None:
            raise RequestRefused("already_revealed",
                                 f"The password was shown on {when(g.account_revealed_at)} and is never shown twice.")
        if g.account != Account.CREATED or g.state not in (Grant.State.ACTIVE, Grant.State.UNVERIFIED) or not g.account_secret:
            raise RequestRefused("not_ready", "This grant has no ephemeral account ready to use.")
        password = vault.unseal(ref=_ref(g), token=g.account_secret).decode()
        g.account_revealed_at = timezone.now()
        Grant.objects.filter(pk=g.pk).update(account_revealed_at=g.account_revealed_at, account_secret="")
        audit_record_many([_entry(g, actor=actor.get_username(), action="grant.account_revealed", before=g.state,
                                  after=g.state, account=g.account_sam)])
    return password


# -- orphans (the reconciler) ---------------------------------------------------------------------------

def ephemeral_orphans_reconcile() -> int:
    """Disable and delete every account in an ephemeral OU that no grant owns; alert. Returns how many went.

    At most JITAD_EPHEMERAL_ORPHANS_PER_RUN per run (the next run takes the rest), each audited.
    An OU the DC cannot read is alerted, not skipped in silence.
    """
    ous = ephemeral_ous()
    if not ous:
        return 0
    removed, problems = [], []
    limit = settings.JITAD_EPHEMERAL_ORPHANS_PER_RUN
    with directory.session() as d:
        for ou in ous:
            try:
                accounts = d.ephemeral_list(ou)
            except directory.DirectoryNotFound:
                continue  # not created yet: nothing in it
            except directory.DirectoryError as e:
                problems.append(f"{ou}: {e}")
                continue
            # Read after listing: a grant plans its account's DN before creating it, so any account
            # in the listing that a grant will own is owned already.
            owned = ephemeral_backed([a.dn for a in accounts])
            for a in accounts:
                if a.dn in owned or len(removed) >= limit:
                    continue
                try:
                    d.ephemeral_delete(a.dn)
                except directory.DirectoryError as e:
                    problems.append(f"{a.dn}: {e}")
                    continue
                removed.append(a)
    if removed:
        with transaction.atomic():
            audit_record_many([AuditEntry(actor="system:reconciler", action="ephemeral.orphan_deleted",
                                          object_type="ephemeral_account", object_id=a.sam, before="present",
                                          after="deleted", reason="no grant owns it",
                                          data={"dn": a.dn, "sid": a.sid, "was_disabled": a.disabled,
                                                "description": a.description[:200], "info": a.info[:200]})
                               for a in removed])
            alert_raise(
                event="ephemeral.orphan_deleted", severity=Notification.Severity.CRITICAL,
                subject=f"{len(removed)} ephemeral account(s) no grant owns were deleted",
                body=("Accounts in jitad's ephemeral OU(s) that no grant owns were disabled and deleted:\n"
                      + "\n".join(f"- {a.dn} ({a.sid}){' (was enabled)' if not a.disabled else ''}" for a in removed)
                      + "\nSomeone created them outside jitad, or jitad's records were restored from an older "
                        "backup. Find out who, from the domain controllers' logs."),
                link="", object_type="ephemeral_account",
            )
    if problems:
        alert_raise(
            event="ephemeral.orphans_unchecked", severity=Notification.Severity.WARNING,
            subject="Ephemeral OU(s) could not be checked for orphan accounts",
            body="\n".join(problems[:20]), link="", object_type="ephemeral_account",
        )
    return len(removed)
