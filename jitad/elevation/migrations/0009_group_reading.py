from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("elevation", "0008_target_nested_into_protected")]

    operations = [
        migrations.CreateModel(
            name="GroupReading",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("group_key", models.CharField(help_text="SHA-256 of the group's normalised DN", max_length=64,
                                               unique=True)),
                ("group_dn", models.CharField(max_length=512)),
                ("members", models.JSONField(default=list, help_text="hashes of the normalised member DNs")),
                ("digest", models.CharField(help_text="SHA-256 of the sorted member hashes", max_length=64)),
                ("read_at", models.DateTimeField()),
            ],
        ),
    ]
