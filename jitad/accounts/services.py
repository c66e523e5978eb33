"""Accounts: mirror an AD user into a local one at login; enrol MFA devices; personal API tokens."""
import logging
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from jitad.audit.services import audit_record
from jitad.directory import DirectoryUser
from jitad.notifications.services import alert_raise

from .devices import AuthenticatorDevice, BackupCodeDevice
from .enrolment import enrolment_code_held, enrolment_code_required
from .mfa import BACKUP_CODE_COUNT, BACKUP_DEVICE_NAME, mfa_devices, mfa_enrolled
from .models import ApiToken, DirectoryAccount
from .roles import privileged_roles
from .throttle import login_key

log = logging.getLogger(__name__)
User = get_user_model()
_GROUP_NAME_MAX = Group._meta.get_field("name").max_length


class AccountConflict(Exception):
    """An AD user cannot be mirrored (a local account already holds the name)."""


def _actor(user) -> str:
    """The audit actor: a user's name, or an operator's as given (``ops:kim``, ``manage.py:root``)."""
    return user[:150] if isinstance(user, str) else user.get_username()


def _sync_groups(user, names: list[str]) -> None:
    names = sorted({n for n in names if n and len(n) <= _GROUP_NAME_MAX})
    existing = {g.name: g for g in Group.objects.filter(name__in=names)}
    missing = [Group(name=n) for n in names if n not in existing]
    if missing:
        Group.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {g.name: g for g in Group.objects.filter(name__in=names)}
    user.groups.set(existing.values())


def account_groups_set(*, user, groups: list[str], actor: str) -> None:
    """Mirror ``groups`` into ``user``'s Django groups, audited when they change."""
    before = sorted(user.groups.values_list("name", flat=True))
    _sync_groups(user, groups)
    after = sorted(user.groups.values_list("name", flat=True))
    if before != after:
        audit_record(actor=actor, action="account.groups_changed", object_type="user", object_id=user.pk,
                     data={"before": before, "after": after})


def account_sync_from_directory(*, entry: DirectoryUser, groups: list[str], actor: str = "") -> "User":
    """Create or update the local user for an AD account that just proved its password (or that an
    operator provisions: ``actor``, jitad/accounts/provisioning.py).

    The link is the objectGUID: a renamed AD user keeps its local row, history and devices.
    A local account that already holds the name is never taken over.
    """
    username = entry.sam_account_name.lower()
    with transaction.atomic():
        link = DirectoryAccount.objects.select_for_update().select_related("user").filter(guid=entry.guid).first()
        if link is None:
            clash = User.objects.filter(username__iexact=username).first()
            if clash is not None:
                if hasattr(clash, "directory_account"):
                    raise AccountConflict(f"{username!r} is linked to another AD account")
                raise AccountConflict(f"{username!r} is a local account")
            user = User(username=username)
            user.set_unusable_password()
            created = True
        else:
            user = link.user
            created = False
            if user.username != username and User.objects.filter(username__iexact=username).exclude(pk=user.pk).exists():
                raise AccountConflict(f"{username!r} is already taken by another account")
        before = user.username if not created else ""
        user.username = username
        user.first_name = (entry.given_name or entry.display_name)[:150]
        user.last_name = entry.surname[:150]
        user.email = entry.mail[:254]
        # is_active stays as it is: an operator who blocked someone in jitad keeps them blocked.
        user.save()
        _sync_groups(user, groups)
        DirectoryAccount.objects.update_or_create(
            user=user,
            defaults={"guid": entry.guid, "dn": entry.dn, "sid": entry.sid, "groups": sorted(groups), "synced_at": timezone.now()},
        )
        audit_record(
            actor=actor or username,
            action="account.created" if created else "account.synced",
            object_type="user",
            object_id=user.pk,
            before=before,
            after=username,
            data={"dn": entry.dn, "groups": sorted(groups)},
        )
    return user


def account_login_failed(*, username: str, reason: str, remote_addr: str = "") -> None:
    """Audit a refused login (never the password), keyed by ``login_key``."""
    with transaction.atomic():
        audit_record(
            actor=(username or "?")[:150],
            action="account.login_failed",
            object_type="user",
            object_id=login_key(username),
            reason=reason,
            data={"remote_addr": remote_addr},
        )


def account_logged_in(*, user, method: str, remote_addr: str = "") -> None:
    with transaction.atomic():
        audit_record(actor=_actor(user), action="account.login", object_type="user", object_id=user.pk,
                     data={"method": method, "remote_addr": remote_addr})


# --- MFA enrolment ----------------------------------------------------------------------


def mfa_change_alert(user, what: str, *, kind: str) -> None:
    """Tell the security channel: a new way to pass MFA is how a stolen password becomes a login.

    Routine for most people (onboarding enrols hundreds at once): it waits for the next
    digest, as ``kind``. For anyone holding a privileged role (approvers, break-glass
    responders, staff) it goes at once, naming the roles.
    """
    roles = privileged_roles(user)
    held = f" They hold privileged roles: {', '.join(roles)}." if roles else ""
    alert_raise(
        event="mfa.changed",
        subject=f"{user.get_username()} {what}",
        body=f"{user.get_username()} {what} in jitad.{held} If this was not them: delete the device in the admin, "
             "revoke their API tokens and reset their AD password.",
        severity="warning",
        object_type="user",
        object_id=user.pk,
        digest_kind="" if roles else kind,
        person=user.get_username(),
    )


def totp_enrol_begin(*, user, device_id=None) -> AuthenticatorDevice:
    """The unconfirmed TOTP device this session is enrolling (``device_id``), or a new one.

    A secret is never handed to a second session: whoever opened the enrol page with a
    stolen password must not hold a copy of the key the real person confirms later.
    """
    device = None
    if device_id is not None:
        device = AuthenticatorDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()
    if device is None:
        device = AuthenticatorDevice.objects.create(user=user, name="authenticator app", confirmed=False)
    return device


def totp_enrol_confirm(*, user, device: AuthenticatorDevice, code: str, enrolment_code_id=None) -> bool:
    """Confirm ``device`` if ``code`` is right; the device counts only from then on.

    A first device needs, while JITAD_ENROLMENT_CODE_REQUIRED is on, the enrolment code this
    session presented (``enrolment_code_id``, jitad/accounts/enrolment.py); without it nothing
    is confirmed, whatever the TOTP code.
    """
    code = (code or "").strip().replace(" ", "")
    with transaction.atomic():
        device = AuthenticatorDevice.objects.select_for_update().get(pk=device.pk, user=user)
        if device.confirmed:
            return True
        held = enrolment_code_held(user=user, code_id=enrolment_code_id)
        if enrolment_code_required(user) and held is None:
            return False
        if not code.isdigit() or not device.verify_token(code):
            return False
        first = not mfa_enrolled(user)
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        # Secrets other sessions were shown and never confirmed die with this confirmation.
        AuthenticatorDevice.objects.filter(user=user, confirmed=False).exclude(pk=device.pk).delete()
        audit_record(actor=_actor(user), action="mfa.enrolled", object_type="otp_device", object_id=device.persistent_id,
                     after="confirmed", data={"kind": "totp", "first": first,
                                              "enrolment_code": held.pk if held is not None and first else None})
        mfa_change_alert(user, "enrolled an authenticator app" + (" (their first MFA device)" if first else ""),
                         kind="enrolled an authenticator app")
    return True


def backup_codes_generate(*, user) -> list[str]:
    """Replace ``user``'s backup codes with a fresh set and return them (shown once; stored hashed and sealed)."""
    codes = [secrets.token_hex(5) for _ in range(BACKUP_CODE_COUNT)]
    with transaction.atomic():
        device, _ = BackupCodeDevice.objects.get_or_create(user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True})
        device.code_set.all().delete()
        device.codes_add(codes)
        audit_record(actor=_actor(user), action="mfa.backup_codes_generated", object_type="otp_device",
                     object_id=device.persistent_id, data={"count": len(codes)})
        mfa_change_alert(user, "made a new set of backup codes", kind="made a new set of backup codes")
    return codes


def mfa_device_remove(*, user, device) -> None:
    """Remove one of ``user``'s devices; the last one cannot go (the account would have no MFA)."""
    with transaction.atomic():
        remaining = [d for d in mfa_devices(user) if d.persistent_id != device.persistent_id
                     and not (isinstance(d, BackupCodeDevice) and not d.code_set.exists())]
        if not remaining:
            raise ValueError("This is your only MFA device. Add another before removing it.")
        audit_record(actor=_actor(user), action="mfa.removed", object_type="otp_device", object_id=device.persistent_id,
                     before="confirmed", after="removed", data={"kind": type(device).__name__})
        device.delete()


# --- API tokens -------------------------------------------------------------------------


def api_token_create(*, user, name: str, days: int | None = 90) -> tuple[ApiToken, str]:
    """A new personal token; the raw value is returned once and never stored.

    Never for an automation identity: its tokens carry its scopes (jitad/accounts/automation.py).
    """
    if hasattr(user, "automation_identity"):
        raise ValueError("An automation identity's tokens are made with manage.py jitad_automation token.")
    name = (name or "").strip()[:100] or "token"
    raw, prefix, digest = ApiToken.generate()
    expires = timezone.now() + timezone.timedelta(days=days) if days else None
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, prefix=prefix, digest=digest, expires_at=expires)
        audit_record(actor=_actor(user), action="api_token.created", object_type="api_token", object_id=token.pk,
                     after="live", data={"name": name, "prefix": prefix, "expires_at": expires.isoformat() if expires else None})
        mfa_change_alert(user, f"created the API token '{name}' ({prefix})", kind="created an API token")
    return token, raw


def api_token_revoke(*, token: ApiToken, actor, reason: str = "") -> ApiToken:
    """Revoke ``token`` (nothing if it is revoked already); ``actor`` is a user or an operator's name."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(actor=_actor(actor), action="api_token.revoked", object_type="api_token", object_id=token.pk,
                         before="live", after="revoked", reason=(reason or "")[:500], data={"prefix": token.prefix})
    return token


def api_token_authenticate(raw: str):
    """The live token matching ``raw``, or None. Constant-time comparison of digests."""
    parts = (raw or "").split("_", 2)  # the secret part may itself contain "_"
    if len(parts) != 3 or parts[0] != "jitad" or len(parts[1]) != ApiToken.PREFIX_LEN:
        return None
    token = ApiToken.objects.live().select_related("user").filter(prefix=parts[1]).first()
    if token is None or not secrets.compare_digest(token.digest, ApiToken.hash(raw)):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
