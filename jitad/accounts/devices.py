"""MFA devices whose secrets are useless to someone who reads the database.

django-otp's TOTPDevice keeps its key in hex and StaticToken keeps backup codes as typed:
a copy of the database (a backup, a dump, a read-only SQL injection) passes MFA for
everyone. These devices keep the same django-otp semantics (Device, ThrottlingMixin,
TimestampMixin; TOTPDevice's own verify_token and config_url run on them) but store:

* the TOTP key sealed in the vault (jitad.vault: AES-256-GCM, key id and ``mfa-totp:<id>:user:<id>``
  as associated data, so a sealed key copied to another person's row does not open);
* each backup code as an scrypt hash with its own salt, itself sealed in the vault for the
  device's row: neither readable nor guessable offline, nor forgeable by someone who can
  write to the database but holds no vault key. A code matches in constant time and is
  deleted as it is used (a second use finds nothing).

A key that cannot be opened (dropped from JITAD_VAULT_KEYS too early) never passes: the
device refuses every code and says why in ``vault_error``; the code does not count as a
wrong guess against the person.
"""
import logging
import os

from django.conf import settings
from django.db import models, transaction
from django.views.decorators.debug import sensitive_variables
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice as _OTPTOTPDevice

from jitad import vault

log = logging.getLogger(__name__)
TOTP_KEY_BYTES = 20


def totp_ref(device_id, user_id) -> str:
    """What a TOTP key is sealed for (its row and its owner)."""
    return f"mfa-totp:{device_id}:user:{user_id}"


def backup_ref(device_id, user_id) -> str:
    """What each backup-code hash of a device is sealed for."""
    return f"mfa-backup:{device_id}:user:{user_id}"


class AuthenticatorDevice(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (TOTP, RFC 6238) whose key is sealed in the vault.

    Fields and verification are django-otp's TOTPDevice's: ``tolerance`` steps either side,
    ``drift`` learned from accepted codes, ``last_t`` so a code (or an older one) is never
    accepted twice, and django-otp's exponential throttling after wrong codes. ``sealed_key``
    is the only place the key lives; it is set on the first save (a new random key) or by
    ``key_replace``, and never shown in the admin.
    """

    sealed_key = models.TextField(blank=True, editable=False)
    step = models.PositiveSmallIntegerField(default=30)
    t0 = models.BigIntegerField(default=0)
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    drift = models.SmallIntegerField(default=0)
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    vault_error = ""
    # django-otp's own code, run on this model: the verification semantics stay the library's.
    config_url = _OTPTOTPDevice.config_url
    _read_str_from_settings = _OTPTOTPDevice._read_str_from_settings

    @property
    def vault_ref(self) -> str:
        return totp_ref(self.pk, self.user_id)

    @property
    def bin_key(self) -> bytes:
        """The key, opened from the vault (VaultError if it does not open)."""
        return vault.unseal(ref=self.vault_ref, token=self.sealed_key)

    def key_replace(self, raw: bytes) -> None:
        """Use ``raw`` as the key from the next save on (enrolment makes a random one by itself)."""
        self._new_key = bytes(raw)

    @sensitive_variables("new_key")
    def save(self, *args, **kwargs):
        new_key = self.__dict__.pop("_new_key", None)
        if new_key is None and not self.sealed_key:
            new_key = os.urandom(TOTP_KEY_BYTES)
        if new_key is None:
            return super().save(*args, **kwargs)
        with transaction.atomic():
            if self.pk is None:
                # The ref needs the row's id: insert with no key at all, seal, and store it in the same transaction.
                super().save(*args, **kwargs)
                self.sealed_key = vault.seal(ref=self.vault_ref, plaintext=new_key)
                type(self).objects.filter(pk=self.pk).update(sealed_key=self.sealed_key)
                return None
            self.sealed_key = vault.seal(ref=self.vault_ref, plaintext=new_key)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "sealed_key"}
            return super().save(*args, **kwargs)

    def verify_token(self, token) -> bool:
        self.vault_error = ""
        try:
            self.bin_key  # a key that does not open is the server's fault, not a wrong guess to throttle
        except vault.VaultError as e:
            self.vault_error = str(e)
            log.error("MFA device %s of user %s cannot be checked: %s", self.pk, self.user_id, e)
            return False
        return _OTPTOTPDevice.verify_token(self, token)

    def get_throttle_factor(self):
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)


class BackupCodeDevice(TimestampMixin, ThrottlingMixin, Device):
    """A set of single-use backup codes (django-otp's StaticDevice, with the codes hashed and sealed)."""

    class Meta(Device.Meta):
        verbose_name = "backup codes"
        verbose_name_plural = "backup codes"

    vault_error = ""

    @property
    def vault_ref(self) -> str:
        return backup_ref(self.pk, self.user_id)

    def get_throttle_factor(self):
        return getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1)

    @sensitive_variables("codes")
    def codes_add(self, codes: list[str]) -> None:
        """Store ``codes`` (hashed, sealed); the plaintext is the caller's to show once.

        The codes of one call share one salt, so checking a code costs one scrypt whatever
        the number of codes left (docs/mfa.md), not one per code.
        """
        salt = vault.hash_salt()
        BackupCode.objects.bulk_create([
            BackupCode(device=self, sealed_hash=vault.seal(ref=self.vault_ref,
                                                           plaintext=vault.hash_make(c.strip().lower(), salt).encode()))
            for c in codes
        ])

    @sensitive_variables("token", "stored")
    def verify_token(self, token) -> bool:
        self.vault_error = ""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        token = str(token or "").strip().lower()
        match, opened = None, 0
        matcher = vault.HashMatcher(token)
        for code in self.code_set.all():
            try:
                stored = vault.unseal(ref=self.vault_ref, token=code.sealed_hash).decode()
            except vault.VaultError as e:
                self.vault_error = str(e)
                continue
            opened += 1
            if matcher.matches(stored):
                match = code
                break
        # Deleting is the "used once": of two requests racing with one code, only one deletes the row.
        if match is not None and BackupCode.objects.filter(pk=match.pk).delete()[0]:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        if self.vault_error:
            log.error("backup codes %s of user %s cannot all be checked: %s", self.pk, self.user_id, self.vault_error)
        if opened or not self.vault_error:
            self.throttle_increment()
        return False


class BackupCode(models.Model):
    """One unused backup code: ``scrypt$n$r$p$salt$digest`` sealed in the vault for its device's row."""

    device = models.ForeignKey(BackupCodeDevice, related_name="code_set", on_delete=models.CASCADE)
    sealed_hash = models.TextField(editable=False)

    def __str__(self):
        return f"backup code of {self.device.user}"
