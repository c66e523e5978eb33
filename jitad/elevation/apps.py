from django.apps import AppConfig
from django.core import checks as system_checks


def audit_objects_named(term: str) -> list[tuple[str, object]]:
    """The audit search's resolver: a target's name -> the target, its requests and grants."""
    from django.db.models import CharField
    from django.db.models.functions import Cast

    from .models import AccessRequest, Grant, Target

    targets = Target.objects.filter(name__iexact=term.strip())

    def ids(qs):
        return qs.annotate(sid=Cast("pk", CharField())).values("sid")

    return [("target", ids(targets)), ("request", ids(AccessRequest.objects.filter(target__in=targets))),
            ("grant", ids(Grant.objects.filter(target__in=targets)))]


class ElevationConfig(AppConfig):
    name = "jitad.elevation"
    label = "elevation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from jitad.accounts.blocking import account_blocked
        from jitad.accounts.roles import privileged_roles_asked
        from jitad.audit.selectors import audit_name_resolver_register
        from jitad.directory.checks import jit_ou_check
        from jitad.engine.signals import broker_unreachable, directory_recovered, next_due, watch
        from jitad.metrics import figures_register

        from . import figures
        from .selectors import approvers
        from .services import grant_sweep, requests
        from .services import watch as checks

        watch.connect(checks.watch_grants, dispatch_uid="jitad.elevation.watch")
        figures_register("grants", figures.grant_figures)
        directory_recovered.connect(checks.grants_retry_now, dispatch_uid="jitad.elevation.retry_now")
        broker_unreachable.connect(grant_sweep.revocations_sweep_here, dispatch_uid="jitad.elevation.revoke_here")
        next_due.connect(grant_sweep.sweep_wakeup, dispatch_uid="jitad.elevation.sweep_wakeup")
        next_due.connect(grant_sweep.revoke_ahead_wakeup, dispatch_uid="jitad.elevation.revoke_ahead_wakeup")
        # Approvers' security events are never held for a digest (jitad.accounts.roles).
        privileged_roles_asked.connect(approvers.privileged_roles_of, dispatch_uid="jitad.elevation.privileged_roles")
        # A person blocked because AD disabled or removed them loses pending requests and live grants.
        account_blocked.connect(requests.holdings_end_for_blocked, dispatch_uid="jitad.elevation.account_blocked")
        # Targets' groups must sit under the JIT OU: a malformed or missing one is a start-up error.
        system_checks.register(jit_ou_check, system_checks.Tags.compatibility)
        # The audit search finds a target's events (and its requests' and grants') by the target's name.
        audit_name_resolver_register(audit_objects_named)
