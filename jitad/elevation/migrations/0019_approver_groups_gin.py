"""GIN indexes on targets' and policies' approver groups, lowered, on PostgreSQL.

``JSONListMatches`` (jitad/accounts/groups.py) asks ``(lower(approver_groups::text)::jsonb) ?| names``:
"is this person an approver anywhere" (every portal page) and "which targets name my groups" (every
API list) then read the index instead of every target's list. SQLite has no such index and keeps
its scan. Targets and policies number thousands at most: the build takes milliseconds.
"""
from django.db import migrations

INDEXES = (("elevation_target_approvers_gin", "elevation_target"), ("elevation_policy_approvers_gin", "elevation_policy"))


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ((lower(approver_groups::text)::jsonb))")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ("elevation", "0018_grant_user_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
