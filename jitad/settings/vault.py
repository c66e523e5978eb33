"""The vault's keys: read from the environment or a file, or generated once into the var dir outside production."""
import os
from pathlib import Path

from .env import PRODUCTION, VAR_DIR, env, refuse

# --- The vault (jitad/vault/, docs/mfa.md, docs/breakglass.md) -------------------------
# Every secret jitad keeps (sealed accounts' passwords, MFA keys, backup-code hashes) is
# encrypted at rest with these keys: the first encrypts, all decrypt (rotate: put a new
# key first, restart, `manage.py jitad_rekey`, then drop the old one). JITAD_VAULT_KEYS_FILE:
# one key per line (container secrets). JITAD_BREAKGLASS_KEYS(_FILE), the older names, are
# still read. Outside production a key is generated into JITAD_VAR_DIR/vault.keys (mode 600;
# an existing breakglass.keys there keeps being used).
def _vault_keys() -> list[str]:
    source, keys = "", []
    # Each name written out whole, so tests/test_ops_docs.py finds every one in the env example.
    for name, file_name in (("JITAD_VAULT_KEYS", "JITAD_VAULT_KEYS_FILE"),
                            ("JITAD_BREAKGLASS_KEYS", "JITAD_BREAKGLASS_KEYS_FILE")):
        if not keys and env.list(name, default=[]):
            source, keys = name, env.list(name)
        elif not keys and os.environ.get(file_name):
            source = file_name
            try:
                lines = Path(os.environ[source]).read_text().splitlines()
            except OSError as e:
                refuse(f"{file_name}={os.environ[file_name]}: cannot be read ({e.strerror})")
                return []
            keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        if PRODUCTION:
            refuse("JITAD_VAULT_KEYS (or JITAD_VAULT_KEYS_FILE; the older JITAD_BREAKGLASS_KEYS is read too) must be "
                   "set in production")
            return []
        source = "the generated vault key file"
        key_file = VAR_DIR / "breakglass.keys"
        if not key_file.exists():
            key_file = VAR_DIR / "vault.keys"
        try:  # O_EXCL: web and worker starting together must not each write a different key
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            from cryptography.fernet import Fernet

            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode() + "\n")
        for _ in range(50):  # the other process may be between creating and writing the file
            keys = [line.strip() for line in key_file.read_text().splitlines() if line.strip()]
            if keys:
                break
            import time

            time.sleep(0.1)
    from cryptography.fernet import Fernet

    usable = True
    for i, key in enumerate(keys, 1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            usable = False
            refuse(f"key {i} of {source} is not a Fernet key (32 url-safe base64 bytes; make one with "
                   "`manage.py jitad_rekey --keygen`)")
    if len(set(keys)) != len(keys):
        usable = False
        refuse(f"{source} names the same key twice")
    return keys if usable else []


JITAD_VAULT_KEYS = _vault_keys()
