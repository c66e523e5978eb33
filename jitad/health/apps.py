from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "jitad.health"
    label = "health"
    verbose_name = "health"

    def ready(self):
        from django.core import checks as system_checks

        from jitad.engine.signals import watch, watch_finished
        from jitad.metrics import figures_register

        from . import checks, figures, system_checks as health_checks

        watch.connect(checks.processes_check, dispatch_uid="jitad.health.processes")
        watch.connect(checks.queues_check, dispatch_uid="jitad.health.queues")
        watch.connect(checks.directory_check, dispatch_uid="jitad.health.directory")
        # After every check (the domain apps' too): while the broker is down it sends, from this
        # process, the alerts they raised in this very run.
        watch_finished.connect(checks.broker_check, dispatch_uid="jitad.health.broker")
        figures_register("engine", figures.engine_figures)
        figures_register("alerts", figures.alert_figures)
        figures_register("deliveries", figures.delivery_figures)
        figures_register("siem", figures.siem_figures)
        figures_register("broker", figures.broker_figures)
        figures_register("readiness", figures.readiness_figures)
        system_checks.register(health_checks.metrics_multiprocess, system_checks.Tags.compatibility)
