"""Whether a person holds a privileged role, asked of the apps above accounts by a signal.

Accounts sits below elevation and break-glass, so it cannot look up who approves
requests or who may check out a sealed account. It asks instead: each of those apps
connects a receiver (in its AppConfig.ready) that names the privileged roles it knows
``user`` holds. A security event of such a person is never held for a digest.
"""
import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

# Sent with ``user``; each receiver returns a list of role names (empty: none it knows of).
privileged_roles_asked = Signal()


def privileged_roles(user) -> list[str]:
    """The privileged roles ``user`` holds: staff or superuser here, and whatever the apps above answer.

    A receiver that fails counts as a role: an event is sent at once rather than held
    on a guess.
    """
    roles = []
    if user.is_superuser:
        roles.append("superuser")
    elif user.is_staff:
        roles.append("staff (admin site)")
    for receiver, answer in privileged_roles_asked.send_robust(sender=type(user), user=user):
        if isinstance(answer, Exception):
            log.error("privileged role check %s failed for %s: %s: %s", getattr(receiver, "__qualname__", receiver),
                      user.get_username(), type(answer).__name__, answer)
            roles.append("unknown (a role check failed)")
        else:
            roles.extend(answer or [])
    return list(dict.fromkeys(roles))
