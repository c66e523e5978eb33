"""The operator's checks: is this installation ready (``manage.py jitad_check``), and can a backup be read
with the keys on hand (``manage.py jitad_backup_check``). Reads every app; holds no model."""
