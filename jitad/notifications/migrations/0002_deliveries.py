"""One delivery record per recipient or destination URL; the old per-notification outcome moves there."""
import django.db.models.deletion
from django.db import migrations, models


def outcomes_to_deliveries(apps, schema_editor):
    """Each earlier alert went to JITAD_ALERT_URLS as a whole: keep its outcome as one delivery."""
    Notification = apps.get_model("notifications", "Notification")
    Delivery = apps.get_model("notifications", "Delivery")
    rows = [
        Delivery(notification_id=n.id, channel="apprise", destination="JITAD_ALERT_URLS", state=n.state,
                 attempts=n.attempts, last_error=n.last_error, sent_at=n.sent_at,
                 next_attempt_at=n.created_at if n.state == "pending" else None)
        for n in Notification.objects.all().iterator()
    ]
    Delivery.objects.bulk_create(rows, batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Delivery",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("channel", models.CharField(choices=[("email", "e-mail"), ("apprise", "apprise")], max_length=8)),
                ("destination", models.CharField(help_text="e-mail: the person's user name; apprise: the variable that holds the URL", max_length=150)),
                ("address", models.CharField(blank=True, help_text="e-mail address, or the URL with its secrets masked", max_length=500)),
                ("position", models.PositiveSmallIntegerField(default=0, help_text="which URL of the destination (apprise)")),
                ("state", models.CharField(choices=[("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed")], db_index=True, default="pending", max_length=8)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(blank=True, help_text="when a pending delivery is due (while it is being sent: when that attempt lapses)", null=True)),
                ("last_error", models.TextField(blank=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("notification", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="notifications.notification")),
            ],
            options={
                "verbose_name_plural": "deliveries",
                "ordering": ["id"],
                "indexes": [models.Index(fields=["state", "next_attempt_at"], name="notificatio_state_ed5af9_idx")],
            },
        ),
        migrations.RunPython(outcomes_to_deliveries, migrations.RunPython.noop),
        migrations.RemoveField(model_name="notification", name="state"),
        migrations.RemoveField(model_name="notification", name="attempts"),
        migrations.RemoveField(model_name="notification", name="last_error"),
        migrations.RemoveField(model_name="notification", name="sent_at"),
        migrations.AddField(
            model_name="notification",
            name="link",
            field=models.URLField(blank=True, help_text="the page the reader should open", max_length=500),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(fields=["object_type", "object_id"], name="notificatio_object__c49989_idx"),
        ),
    ]
