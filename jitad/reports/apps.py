from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "jitad.reports"
    label = "reports"
    verbose_name = "reports"

    def ready(self):
        from jitad.elevation.signals import group_read

        from .services.snapshots import baseline_reading_record

        # The reconciler's first reading of each managed group is the right's baseline.
        group_read.connect(baseline_reading_record, dispatch_uid="jitad.reports.baseline_reading")
