"""Startup check (runs with `migrate` and `check --database default`): stored secrets whose key is gone."""
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError


@register(Tags.database)
def sealed_values_have_their_keys(app_configs=None, databases=None, **kwargs):
    from . import VaultError, key_ids, sealed_fields, token_key_id

    if not databases:
        return []
    try:
        configured = set(key_ids())
    except VaultError as e:
        return [Error(str(e), hint="Set JITAD_VAULT_KEYS (docs/mfa.md).", id="jitad.vault.E001")]
    messages = []
    for f in sealed_fields():
        try:
            tokens = f.queryset().exclude(**{f.field: ""}).values_list(f.field, flat=True)
            missing = {token_key_id(t) for t in tokens} - configured - {""}
        except DatabaseError:  # not migrated yet: nothing is stored
            continue
        if missing:
            messages.append(Warning(
                f"{f.name}: values are sealed under key id(s) {', '.join(sorted(missing))}, which JITAD_VAULT_KEYS "
                "does not hold; they cannot be opened (MFA devices sealed under them refuse every code)",
                hint="Put the old key back (after the first one) and run `manage.py jitad_rekey` (docs/mfa.md).",
                id="jitad.vault.W001"))
    return messages
