"""System checks of the directory settings (run by ``manage.py check``, ``migrate`` and ``runserver``)."""
from django.conf import settings
from django.core import checks

from .managed import jit_ou_problems, jit_ous

HINT = "JITAD_LDAP_JIT_OU names the OU (or OUs, separated by ';') holding jitad's JIT groups, e.g. OU=JIT,DC=corp,DC=example"


def jit_ou_check(app_configs=None, **kwargs) -> list:
    """Each JIT OU must be an OU's DN; production must name one (without it no group is managed).

    Production settings already refuse to load without one; the check also covers settings
    changed after start (tests, a settings module of one's own).
    """
    found = [checks.Error(f"JITAD_LDAP_JIT_OU: {p}", hint=HINT, id="jitad.directory.E001") for p in jit_ou_problems()]
    if not jit_ous():
        if settings.PRODUCTION:
            found.append(checks.Error("JITAD_LDAP_JIT_OU is not set: jitad would manage no group", hint=HINT,
                                      id="jitad.directory.E002"))
        elif settings.JITAD_LDAP_URLS:
            found.append(checks.Warning("JITAD_LDAP_JIT_OU is not set: no target's group can be applied or changed",
                                        hint=HINT, id="jitad.directory.W001"))
    return found
