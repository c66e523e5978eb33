"""Enrolment codes: the service desk's one-time code that a person's first MFA enrolment must present.

Without one, the first person to log in with someone's AD password enrols the authenticator
that stands for them from then on (trust on first use). With JITAD_ENROLMENT_CODE_REQUIRED,
the enrolment page asks first for a code an operator issued to that person and handed over
out of band (in person, by phone to a known number, in a sealed letter): a stolen password
alone no longer makes an MFA device. Stored, checked and limited as
``accounts.EnrolmentCode`` says; the rules are in docs/mfa.md, "Enrolment codes".
"""
import hashlib
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from jitad import vault
from jitad.audit.services import audit_record
from jitad.notifications.services import alert_raise

from .mfa import mfa_enrolled
from .models import EnrolmentCode, enrolment_code_ref

log = logging.getLogger(__name__)
# Crockford's base32: no I, L, O or U, so a code read out on the phone cannot be misheard as
# another; 16 characters are 80 bits, beyond guessing within the few tries a code allows.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16
_READS_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


class EnrolmentCodeRefused(Exception):
    """An enrolment code cannot be issued (the person is inactive or an automation identity)."""


@dataclass
class EnrolmentCheck:
    """The outcome of presenting a code: the code taken, or why none was."""

    code: EnrolmentCode | None = None
    error: str = ""


def enrolment_code_required(user) -> bool:
    """True if ``user``'s next enrolment must present a code: the setting is on and it is their first device."""
    return bool(settings.JITAD_ENROLMENT_CODE_REQUIRED) and not mfa_enrolled(user)


def _normalise(raw: str) -> str:
    return "".join(c for c in str(raw or "").upper().translate(_READS_AS) if c in ALPHABET)


def _digest(normalised: str) -> bytes:
    return hashlib.sha256(f"jitad-enrolment-code:{normalised}".encode()).digest()


def _live(user):
    return EnrolmentCode.objects.filter(user=user, used_at__isnull=True, voided_at__isnull=True, expires_at__gt=timezone.now())


@sensitive_variables("raw")
def enrolment_code_issue(*, user, actor: str, hours: int | None = None) -> tuple[EnrolmentCode, str]:
    """A new code for ``user``, returned once as ``XXXX-XXXX-XXXX-XXXX``; earlier live codes are voided.

    The caller shows it to the operator and keeps it nowhere. Audited (``enrolment_code.issued``),
    never with the code.
    """
    if not user.is_active:
        raise EnrolmentCodeRefused(f"{user.get_username()} is blocked in jitad: unblock them first.")
    if hasattr(user, "automation_identity"):
        raise EnrolmentCodeRefused(f"{user.get_username()} is an automation identity: it never enrols MFA.")
    hours = hours or settings.JITAD_ENROLMENT_CODE_HOURS
    if not 1 <= hours <= 24 * 30:
        raise EnrolmentCodeRefused("A code lasts 1 hour to 30 days.")
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    now = timezone.now()
    with transaction.atomic():
        replaced = _live(user).select_for_update().update(voided_at=now, void_reason="replaced")
        code = EnrolmentCode.objects.create(user=user, sealed_digest="", issued_by=actor[:150], issued_at=now,
                                            expires_at=now + timezone.timedelta(hours=hours))
        code.sealed_digest = vault.seal(ref=enrolment_code_ref(code.pk, user.pk), plaintext=_digest(raw))
        code.save(update_fields=["sealed_digest"])
        audit_record(actor=actor, action="enrolment_code.issued", object_type="user", object_id=user.pk,
                     after="issued", data={"code": code.pk, "expires_at": code.expires_at.isoformat(),
                                           "replaced": replaced, "enrolled": mfa_enrolled(user)})
    return code, "-".join(raw[i:i + 4] for i in range(0, LENGTH, 4))


def enrolment_code_revoke(*, user, actor: str, reason: str = "") -> int:
    """Void ``user``'s live codes (a code handed to the wrong person, a person who left); how many."""
    with transaction.atomic():
        ids = list(_live(user).select_for_update().values_list("pk", flat=True))
        if ids:
            EnrolmentCode.objects.filter(pk__in=ids).update(voided_at=timezone.now(), void_reason="revoked")
            audit_record(actor=actor, action="enrolment_code.revoked", object_type="user", object_id=user.pk,
                         before="issued", after="revoked", reason=reason[:500], data={"codes": ids})
    return len(ids)


@sensitive_variables("raw", "typed")
def enrolment_code_redeem(*, user, raw: str) -> EnrolmentCheck:
    """Take ``user``'s live code if ``raw`` is it (once: ``used_at``); count a wrong one against it.

    After JITAD_ENROLMENT_CODE_MAX_ATTEMPTS wrong codes the code is voided and the security
    channel told at once: someone holding the person's password is guessing.
    """
    typed = _normalise(raw)
    if len(typed) != LENGTH:
        return EnrolmentCheck(error=f"An enrolment code has {LENGTH} letters and digits (XXXX-XXXX-XXXX-XXXX).")
    with transaction.atomic():
        code = _live(user).select_for_update().order_by("-issued_at").first()
        if code is None:
            return EnrolmentCheck(error="You have no valid enrolment code: it was used, has expired or was never "
                                        "issued. Ask the service desk for a new one.")
        try:
            stored = vault.unseal(ref=enrolment_code_ref(code.pk, user.pk), token=code.sealed_digest)
        except vault.VaultError as e:
            # The server's fault, not a wrong guess: nothing is counted against the person.
            log.error("enrolment code %s of user %s cannot be checked: %s", code.pk, user.pk, e)
            return EnrolmentCheck(error="Your code cannot be checked: the server cannot open what it stored (a vault "
                                        "key is missing). Tell an administrator.")
        if secrets.compare_digest(stored, _digest(typed)):
            code.used_at = timezone.now()
            code.save(update_fields=["used_at"])
            audit_record(actor=user.get_username(), action="enrolment_code.used", object_type="user",
                         object_id=user.pk, before="issued", after="used", data={"code": code.pk})
            return EnrolmentCheck(code=code)
        code.failed_attempts += 1
        left = settings.JITAD_ENROLMENT_CODE_MAX_ATTEMPTS - code.failed_attempts
        fields = ["failed_attempts"]
        if left <= 0:
            code.voided_at, code.void_reason = timezone.now(), "attempts"
            fields += ["voided_at", "void_reason"]
        code.save(update_fields=fields)
        audit_record(actor=user.get_username(), action="enrolment_code.failed", object_type="user", object_id=user.pk,
                     after="voided" if left <= 0 else "issued", data={"code": code.pk, "attempts": code.failed_attempts})
        if left > 0:
            return EnrolmentCheck(error=f"That enrolment code is not right. {left} more "
                                        f"{'try' if left == 1 else 'tries'} before it stops working.")
        alert_raise(event="enrolment_code.voided", subject=f"{user.get_username()}'s enrolment code: too many wrong tries",
                    body=f"Someone logged in as {user.get_username()} (with their password) and typed "
                         f"{code.failed_attempts} wrong enrolment codes; the code no longer works. If this was not "
                         "them, reset their AD password before issuing a new code.",
                    severity="warning", object_type="user", object_id=user.pk)
    return EnrolmentCheck(error="That enrolment code is not right, and it no longer works after so many wrong tries. "
                                "Ask the service desk for a new one.")


def enrolment_code_held(*, user, code_id) -> EnrolmentCode | None:
    """The code this session presented (``code_id``), if it is ``user``'s, taken and not yet expired or voided."""
    if not isinstance(code_id, int):
        return None
    return EnrolmentCode.objects.filter(pk=code_id, user=user, used_at__isnull=False, voided_at__isnull=True,
                                        expires_at__gt=timezone.now()).first()
