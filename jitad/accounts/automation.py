"""Automation identities: non-human API clients with scoped rights, created and managed by operators.

What an identity may call is checked on each of its API calls (jitad/accounts/automation_api.py);
this module makes and changes them. Every change is audited with the operator as actor, and
what the identity then does is audited under its own name, as a person's calls are.
"""
import base64
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from jitad import metrics
from jitad.audit.selectors import audit_recorded_since
from jitad.audit.services import audit_record
from jitad.notifications.services import condition_raise, condition_resolve, conditions_open

from .mfa import mfa_enrolled
from .models import ApiToken, AutomationIdentity
from .services import api_token_revoke

User = get_user_model()

# What each scope lets an identity call: (method, URL name). GET covers HEAD. Anything not
# listed (approving, deciding reviews, delegations, break-glass, passkeys) no scope allows:
# a decision about someone's access stays with a person.
SCOPES = {
    "eligibility.read": {("GET", "api:eligibility")},
    "requests.read": {("GET", "api:requests"), ("GET", "api:request")},
    "requests.create": {("POST", "api:requests")},
    "requests.end": {("POST", "api:request-release"), ("POST", "api:request-cancel")},
    "requests.extend": {("POST", "api:request-extend")},
    "reports.read": {("GET", "reports-api:access-history")},
}
# reports.read also needs the Django permission the reports API checks for anyone.
_SCOPE_PERMISSIONS = {"reports.read": ("reports", "view_reports")}
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")


class AutomationRefused(Exception):
    """An automation identity cannot be made or changed as asked (the reason, for the operator)."""


class UnknownToken(Exception):
    """The identity has no token with that prefix."""


def _clean_scopes(scopes, targets) -> tuple[list[str], list[str]]:
    scopes = sorted({s.strip() for s in scopes or [] if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise AutomationRefused(f"unknown scope(s) {', '.join(unknown)}; scopes are: {', '.join(sorted(SCOPES))}")
    targets = sorted({t.strip() for t in targets or [] if t.strip()})
    if any(len(t) > 200 for t in targets):
        raise AutomationRefused("a target name is at most 200 characters")
    if "requests.create" in scopes and not targets:
        raise AutomationRefused("requests.create needs the targets it may request (--target NAME, one or more)")
    return scopes, targets


def _permissions_follow(user, scopes: list[str]) -> None:
    for scope, (app, codename) in _SCOPE_PERMISSIONS.items():
        permission = Permission.objects.filter(content_type__app_label=app, codename=codename).first()
        if permission is None:
            continue
        if scope in scopes:
            user.user_permissions.add(permission)
        else:
            user.user_permissions.remove(permission)


def automation_rights_check(*, scopes, targets=()) -> None:
    """Raise AutomationRefused for scopes and targets ``automation_create`` would refuse, before anything
    is made (an AD service account is provisioned before its identity: refused rights must not leave it
    behind as a person's portal user)."""
    _clean_scopes(scopes, targets)


def automation_create(*, name: str, actor: str, scopes, targets=(), description: str = "", user=None) -> AutomationIdentity:
    """A new identity: a new local user ``name`` (no usable password), or ``user`` (an AD service
    account provisioned first, jitad/accounts/provisioning.py, so that its grants have an account to
    add to groups) which must never have been used by a person (no MFA device, no API token)."""
    scopes, targets = _clean_scopes(scopes, targets)
    with transaction.atomic():
        if user is None:
            name = (name or "").strip().lower()
            if not NAME.match(name):
                raise AutomationRefused("a name is 2 to 40 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
            if User.objects.filter(username__iexact=name).exists():
                raise AutomationRefused(f"{name!r} is taken")
            user = User(username=name, first_name="automation")
            user.set_unusable_password()
            user.save()
        else:
            if hasattr(user, "automation_identity"):
                raise AutomationRefused(f"{user.get_username()} is an automation identity already")
            if user.is_staff or user.is_superuser or mfa_enrolled(user) or ApiToken.objects.filter(user=user).exists():
                raise AutomationRefused(f"{user.get_username()} has been used as a person's account (staff, an MFA "
                                        "device or a token): use an account of its own")
            user.set_unusable_password()
            user.save(update_fields=["password"])
        identity = AutomationIdentity.objects.create(user=user, scopes=scopes, targets=targets,
                                                     description=(description or "")[:200], created_by=actor[:150])
        _permissions_follow(user, scopes)
        audit_record(actor=actor, action="automation.created", object_type="user", object_id=user.pk, after="created",
                     data={"name": user.get_username(), "scopes": scopes, "targets": targets,
                           "directory": hasattr(user, "directory_account")})
    return identity


def automation_rights_set(*, identity: AutomationIdentity, actor: str, scopes, targets=()) -> AutomationIdentity:
    """Replace what ``identity`` may call; effective on its next call."""
    scopes, targets = _clean_scopes(scopes, targets)
    with transaction.atomic():
        identity = AutomationIdentity.objects.select_for_update().get(pk=identity.pk)
        before = {"scopes": identity.scopes, "targets": identity.targets}
        identity.scopes, identity.targets = scopes, targets
        identity.save(update_fields=["scopes", "targets"])
        _permissions_follow(identity.user, scopes)
        audit_record(actor=actor, action="automation.rights_changed", object_type="user", object_id=identity.user_id,
                     data={"before": before, "after": {"scopes": scopes, "targets": targets}})
    return identity


@sensitive_variables("private")
def automation_key_set(*, identity: AutomationIdentity, actor: str, public_key: str = "") -> str:
    """Set the identity's signing key: ``public_key`` (base64url or PEM, made where the identity
    runs: the private key never exists here), or a new pair whose private key (PEM) is returned
    once. The previous key stops working at once."""
    private = ""
    if public_key:
        raw = _public_raw(public_key)
    else:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with transaction.atomic():
        identity = AutomationIdentity.objects.select_for_update().get(pk=identity.pk)
        replaced = bool(identity.public_key)
        identity.public_key = encoded
        identity.save(update_fields=["public_key"])
        audit_record(actor=actor, action="automation.key_set", object_type="user", object_id=identity.user_id,
                     data={"public_key": encoded, "replaced": replaced, "made_here": not public_key})
    return private


def _public_raw(text: str) -> bytes:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise AutomationRefused("the public key must be an Ed25519 key")
            return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as e:
        raise AutomationRefused(f"that is not an Ed25519 public key: {e}") from None
    if len(raw) != 32:
        raise AutomationRefused("an Ed25519 public key is 32 bytes")
    Ed25519PublicKey.from_public_bytes(raw)
    return raw


def automation_token_create(*, identity: AutomationIdentity, actor: str, name: str = "", days: int | None = 90) -> tuple[ApiToken, str]:
    """A new token of ``identity``; the raw value is returned once and never stored."""
    if days is not None and not 1 <= days <= 366:
        raise AutomationRefused("a token lasts 1 to 366 days")
    if not identity.user.is_active:
        raise AutomationRefused(f"{identity.user.get_username()} is disabled")
    name = (name or "").strip()[:100] or "automation"
    raw, prefix, digest = ApiToken.generate()
    expires = timezone.now() + timezone.timedelta(days=days) if days else None
    with transaction.atomic():
        token = ApiToken.objects.create(user=identity.user, automation=identity, name=name, prefix=prefix,
                                        digest=digest, expires_at=expires)
        audit_record(actor=actor, action="api_token.created", object_type="api_token", object_id=token.pk, after="live",
                     data={"name": name, "prefix": prefix, "automation": identity.user.get_username(),
                           "expires_at": expires.isoformat() if expires else None})
    return token, raw


def automation_disable(*, identity: AutomationIdentity, actor: str, reason: str = "") -> int:
    """Stop ``identity``: inactive, every token revoked (how many). Its live grants run out as any do."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=identity.user_id)
        user.is_active = False
        user.save(update_fields=["is_active"])
        revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
        audit_record(actor=actor, action="automation.disabled", object_type="user", object_id=user.pk,
                     before="active", after="disabled", reason=reason[:500], data={"tokens_revoked": revoked})
        for condition in conditions_open(prefix=_replay_prefix(identity)):
            _replay_answered(identity, condition.key.rsplit(":", 1)[1], f"it was disabled by {actor}")
    return revoked


def automation_tokens(*, identity: AutomationIdentity) -> list[ApiToken]:
    """Every token of ``identity``, live or not, newest first."""
    return list(ApiToken.objects.filter(automation=identity).order_by("-created_at", "-id"))


def automation_token_revoke(*, identity: AutomationIdentity, actor: str, prefix: str, reason: str = "") -> tuple[ApiToken, bool]:
    """Revoke the one token of ``identity`` whose prefix is ``prefix`` (its others keep working); (the token, whether
    this call revoked it: False when it was revoked already). Raises UnknownToken when the identity has no such token."""
    prefix = (prefix or "").strip().lower()
    if prefix.startswith("jitad_"):  # a whole token pasted: its prefix, and the secret part never echoed
        prefix = prefix.split("_")[1]
    prefix = prefix[:ApiToken.PREFIX_LEN * 2]
    token = ApiToken.objects.filter(automation=identity, prefix=prefix).first() if prefix else None
    if token is None:
        raise UnknownToken(f"{identity.user.get_username()} has no token {prefix!r} (jitad_automation tokens NAME lists them)")
    if token.revoked_at is not None:
        return token, False
    with transaction.atomic():
        token = api_token_revoke(token=token, actor=actor, reason=reason)
        _replay_answered(identity, token.prefix, f"the token was revoked by {actor}")
    return token, True


# A signed write refused (jitad/accounts/automation_api.py): counted, audited under the identity's name, and for a
# replay, which means someone holds a copy of a real call (its token included), alerted.
REPLAYED = "signature_replayed"
REPLAY_EVENT = "automation.signature_replayed"


# A token's refusals are audited once per reason in this period (each is counted in jitad_mfa_failures): whoever holds
# a copied token but not the key could otherwise write an audit row, under the chain's one lock, with every call.
REFUSAL_AUDIT_EVERY = timezone.timedelta(minutes=10)


def _replay_prefix(identity: AutomationIdentity) -> str:
    return f"{REPLAY_EVENT}:{identity.user.get_username()}:"


def _replay_key(identity: AutomationIdentity, prefix: str) -> str:
    return f"{_replay_prefix(identity)}{prefix}"[:200]


def _replay_subject(name: str, prefix: str) -> str:
    return f"Automation identity {name}: a signed call with token {prefix} was sent again (replayed)"[:200]


def automation_signature_refused(*, identity: AutomationIdentity, token: ApiToken, reason: str, code: str,
                                 method: str, path: str, nonce: str = "") -> None:
    """Record a refused signed write of ``identity``: the MFA-failure counter (device ``signature``), an audit event
    (``automation.signature_refused``, the identity as actor), and for a replay an alert on the security channel.

    Every refusal is counted; the audit event is written for the first refusal of a token for a reason in each
    REFUSAL_AUDIT_EVERY (the counter has them all). The alert is a condition (jitad/notifications/services/conditions.py), one per token: open
    until an operator revokes that token or disables the identity (a new key does not stop a copied token's
    reads), replays meanwhile only counted, with a reminder every JITAD_ALERT_REMIND_MINUTES; so replaying a
    captured call in a loop floods neither the channel nor the audit trail.
    Committed at once, whatever becomes of the refused request: jitad's requests are not atomic (no
    ATOMIC_REQUESTS, which would roll this back with the refusal, and the nonces of accepted calls too).
    """
    metrics.count(metrics.mfa_failures, device="signature", reason=reason)
    name = identity.user.get_username()
    recent = audit_recorded_since(action="automation.signature_refused", object_type="api_token", object_id=token.pk,
                                  reason=reason, since=timezone.now() - REFUSAL_AUDIT_EVERY)
    with transaction.atomic():
        if not recent:
            audit_record(actor=name, action="automation.signature_refused", object_type="api_token",
                         object_id=token.pk, reason=reason,
                         data={"code": code, "prefix": token.prefix, "method": method[:10], "path": path[:200],
                               **({"nonce": nonce[:64]} if nonce else {})})
        if reason == REPLAYED:
            condition_raise(key=_replay_key(identity, token.prefix), event=REPLAY_EVENT, severity="critical",
                            subject=_replay_subject(name, token.prefix),
                            body=f"A write signed for {name} (token {token.prefix}, {method[:10]} {path[:200]}) was sent "
                                 "a second time and refused. Whoever sent it holds a copy of a real call, its token "
                                 "included: revoke the token (manage.py jitad_automation token-revoke "
                                 f"{name} {token.prefix}), and find where calls are copied (a proxy's or CI log). "
                                 "Further replays are counted on this alert until that token is revoked or the "
                                 "identity disabled (docs/mfa.md, 'Automation identities').")


def _replay_answered(identity: AutomationIdentity, prefix: str, how: str) -> None:
    """Close the replay alert of ``identity``'s token ``prefix``, if one is open: an operator has acted."""
    condition_resolve(key=_replay_key(identity, prefix), event=REPLAY_EVENT,
                      subject=_replay_subject(identity.user.get_username(), prefix), body=f"Answered: {how}.")
