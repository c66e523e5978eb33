"""Move django-otp's TOTP devices and backup codes into jitad's devices: keys sealed, codes hashed.

Each TOTP key is sealed in the vault for its new row, each backup code hashed (scrypt, own
salt) and sealed; the old rows are then deleted (on SQLite with secure_delete, so the freed
pages are zeroed). Nobody re-enrols: the same authenticator apps and codes keep working.
Sessions verified before the migration name the old device and must verify again.
On PostgreSQL the deleted rows stay in the table files until VACUUM: docs/mfa.md says what to run.

Backwards, TOTP keys go back to django-otp in plaintext (the old code needs them so); backup
codes cannot (only hashes exist): people make a new set.
"""
from django.db import migrations

FIELDS = ("user_id", "name", "confirmed", "throttling_failure_timestamp", "throttling_failure_count", "last_used_at")
TOTP_FIELDS = ("step", "t0", "digits", "tolerance", "drift", "last_t")


def _secure_delete(schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("PRAGMA secure_delete = ON")


def forward(apps, schema_editor):
    from jitad import vault
    from jitad.accounts.devices import backup_ref, totp_ref

    _secure_delete(schema_editor)
    OldTotp, NewTotp = apps.get_model("otp_totp", "TOTPDevice"), apps.get_model("accounts", "AuthenticatorDevice")
    for old in OldTotp.objects.order_by("pk"):
        new = NewTotp.objects.create(sealed_key="", **{f: getattr(old, f) for f in FIELDS + TOTP_FIELDS})
        sealed = vault.seal(ref=totp_ref(new.pk, new.user_id), plaintext=bytes.fromhex(old.key))
        NewTotp.objects.filter(pk=new.pk).update(sealed_key=sealed, created_at=old.created_at)
        old.delete()

    OldDevice, OldToken = apps.get_model("otp_static", "StaticDevice"), apps.get_model("otp_static", "StaticToken")
    NewDevice, NewCode = apps.get_model("accounts", "BackupCodeDevice"), apps.get_model("accounts", "BackupCode")
    for old in OldDevice.objects.order_by("pk"):
        new = NewDevice.objects.create(**{f: getattr(old, f) for f in FIELDS})
        NewDevice.objects.filter(pk=new.pk).update(created_at=old.created_at)
        ref = backup_ref(new.pk, new.user_id)
        NewCode.objects.bulk_create([
            NewCode(device_id=new.pk, sealed_hash=vault.seal(ref=ref, plaintext=vault.hash_make(t.token.strip().lower()).encode()))
            for t in OldToken.objects.filter(device_id=old.pk)
        ])
        OldToken.objects.filter(device_id=old.pk).delete()
        old.delete()


def backward(apps, schema_editor):
    from jitad import vault
    from jitad.accounts.devices import totp_ref

    OldTotp, NewTotp = apps.get_model("otp_totp", "TOTPDevice"), apps.get_model("accounts", "AuthenticatorDevice")
    for new in NewTotp.objects.order_by("pk"):
        key = vault.unseal(ref=totp_ref(new.pk, new.user_id), token=new.sealed_key).hex()
        old = OldTotp.objects.create(key=key, **{f: getattr(new, f) for f in FIELDS + TOTP_FIELDS})
        OldTotp.objects.filter(pk=old.pk).update(created_at=new.created_at)
        new.delete()
    apps.get_model("accounts", "BackupCodeDevice").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_mfa_devices_sealed"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(forward, backward)]
