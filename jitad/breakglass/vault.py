"""Break-glass passwords in the vault, and generating them.

Encryption at rest is jitad.vault's (AES-256-GCM under JITAD_VAULT_KEYS, key ids, rotation
with ``manage.py jitad_rekey``). Each secret is bound to its row (``SealedAccount.vault_ref``):
a ciphertext copied to another account's row does not open there. Plaintext exists only in
the worker's memory while a password is set, and in the one response that reveals it.
"""
import secrets
import string

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from jitad import vault
from jitad.vault import passwords
from jitad.vault import VaultError, key_generate  # noqa: F401  (this app's callers and tests name them here)

@sensitive_variables("password")
def secret_seal(*, ref: str, password: str) -> str:
    """Encrypt ``password`` for the row named ``ref`` with the first vault key."""
    return vault.seal(ref=ref, plaintext=password.encode())


def secret_open(*, ref: str, token: str) -> str:
    """Decrypt a secret sealed for ``ref``; VaultError if the keys or the row do not match."""
    try:
        return vault.unseal(ref=ref, token=token).decode()
    except UnicodeDecodeError as e:
        raise VaultError(f"the secret of {ref} is not a password") from e


def secret_rekey(*, ref: str, token: str) -> str:
    """The same secret sealed under the first key (for key rotation)."""
    return vault.reseal(ref=ref, token=token)


def password_generate(*, length: int | None = None, avoid: str = "") -> str:
    """A random password of ``length`` (JITAD_BREAKGLASS_PASSWORD_LENGTH) with every character class.

    AD's complexity rule also refuses a password containing the account name: ``avoid``.
    """
    length = length or settings.JITAD_BREAKGLASS_PASSWORD_LENGTH
    if length < 16:
        raise ValueError("a break-glass password has at least 16 characters")
    return passwords.password_generate(length=length, avoid=avoid)


def seal_id_generate() -> str:
    """A seal id people can read out over the phone: BG-XXXX-XXXX-XXXX (60 random bits)."""
    alphabet = string.digits + "ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford-like: no I, L, O, U
    groups = ["".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3)]
    return "BG-" + "-".join(groups)
