from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "jitad.health"
    label = "health"
    verbose_name = "health"

    def ready(self):
        from jitad.engine.signals import watch

        from . import checks

        watch.connect(checks.processes_check, dispatch_uid="jitad.health.processes")
        watch.connect(checks.queues_check, dispatch_uid="jitad.health.queues")
        watch.connect(checks.directory_check, dispatch_uid="jitad.health.directory")
        # Last: it sends the alerts the checks before it raised when no worker can.
        watch.connect(checks.broker_check, dispatch_uid="jitad.health.broker")
