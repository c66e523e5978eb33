from django.apps import AppConfig


def audit_objects_named(term: str) -> list[tuple[str, object]]:
    """The audit search's resolver: a sealed account's name -> the account and its checkouts."""
    from django.db.models import CharField
    from django.db.models.functions import Cast

    from .models import Checkout, SealedAccount

    accounts = SealedAccount.objects.filter(name__iexact=term.strip())
    return [("sealed_account", accounts.annotate(sid=Cast("pk", CharField())).values("sid")),
            ("checkout", Checkout.objects.filter(account__in=accounts)
             .annotate(sid=Cast("pk", CharField())).values("sid"))]


class BreakglassConfig(AppConfig):
    name = "jitad.breakglass"
    label = "breakglass"
    verbose_name = "Break-glass"

    def ready(self):
        from jitad.accounts.backends import portal_login_refusal_asked
        from jitad.accounts.blocking import account_blocked
        from jitad.accounts.roles import privileged_roles_asked
        from jitad.audit.selectors import audit_name_resolver_register
        from jitad.engine.signals import broker_unreachable
        from jitad.vault import sealed_field_register

        from .models import SealedAccount
        from .selectors import privileged_roles_of, sealed_login_refused
        from .services.checkins import checkouts_end_for_blocked
        from .services.sweep import breakglass_sweep_here

        # Responders' and approvers' security events are never held for a digest (jitad.accounts.roles).
        privileged_roles_asked.connect(privileged_roles_of, dispatch_uid="jitad.breakglass.privileged_roles")
        # A sealed account never logs in to the portal (jitad.accounts.backends).
        portal_login_refusal_asked.connect(sealed_login_refused, dispatch_uid="jitad.breakglass.sealed_login")
        # A person blocked because AD disabled or removed them loses their break-glass checkouts.
        account_blocked.connect(checkouts_end_for_blocked, dispatch_uid="jitad.breakglass.account_blocked")
        # With the broker down, the watchdog's process ends windows and rotates exposed accounts itself.
        broker_unreachable.connect(breakglass_sweep_here, dispatch_uid="jitad.breakglass.sweep_here")
        # The audit search finds an account's events (and its checkouts') by the account's name.
        audit_name_resolver_register(audit_objects_named)

        # Key rotation (manage.py jitad_rekey) re-encrypts both stored passwords of each account.
        for field in ("secret", "pending_secret"):
            sealed_field_register(name=f"break-glass {field.replace('_', ' ')}s", field=field,
                                  queryset=lambda: SealedAccount.objects.all(), ref=lambda row: row.vault_ref)
