"""Groups jitad was told to change but does not own: one alert per group, resolved when none is left.

The directory seam refuses any member change outside the JIT OU, any add to a group
nested into a protected one, and any removal from a well-known privileged group such as
Domain Admins wherever it sits (DirectoryNotManaged), whatever the database says; a target
row pointing outside the JIT OU means the database was edited around the policy file. Grants of such a group fail at once (never retried as
transient), the reconciler skips it, and both raise the one condition
``group.not_managed:<group DN>`` instead of an alert per grant or per run.
"""
from django.conf import settings
from django.urls import reverse

from jitad import directory
from jitad.notifications.models import Notification
from jitad.notifications.services import condition_raise, condition_resolve, conditions_open

from ..models import Grant, Target

PREFIX = "group.not_managed:"
_KEY_MAX = 200  # AlertCondition.key


def condition_key(group_dn: str) -> str:
    return (PREFIX + group_dn)[:_KEY_MAX]


PRIVILEGED_EVENT = "group.not_managed_privileged"


def group_not_managed_raise(*, group_dn: str, error: Exception, grant_ids=(), by: str,
                            privileged: bool = False) -> None:
    """Open (or count) the group's condition; ``by`` says who was refused (engine, reconciler).

    ``privileged``: refused for what the group is (a well-known privileged group, or adminCount=1
    unflagged), not where it sits; such a condition stays open while an enabled target names the
    group, even under the JIT OU.
    """
    label = directory.group_label(group_dn)
    ids = sorted(grant_ids)
    grants = f"Grant(s) refused this time: {', '.join(f'#{i}' for i in ids[:20])}{' ...' if len(ids) > 20 else ''}\n" if ids else ""
    condition_raise(
        key=condition_key(group_dn),
        event=PRIVILEGED_EVENT if privileged else "group.not_managed",
        severity=Notification.Severity.CRITICAL,
        subject=f"jitad refused to change {label}: not a group it manages",
        body=(
            f"The {by} was asked to change the members of {group_dn}, a group jitad does not manage "
            f"(JIT OU: {'; '.join(directory.jit_ous()) or 'JITAD_LDAP_JIT_OU is not set'}). Nothing was changed "
            f"in AD.\n{error}\n{grants}"
            "Outside the JIT OU: a target in the database names this group although the policy file refuses "
            "it, so someone changed the database around the policy file; find out who (the audit log), then "
            "apply the policy file again. Nested into a protected group: take it out (docs/managed-groups.md). "
            "A well-known privileged group (Domain Admins and the like) is never jitad's, wherever it sits: "
            "move it back and remove the target naming it."
        ),
        link=settings.JITAD_BASE_URL + reverse("admin:elevation_target_changelist"),
    )


def not_managed_conditions_resolve(*, still=()) -> None:
    """Resolve each group's condition once no enabled target names it and no grant of it is failed.

    ``still``: groups refused in this very run (a privileged group under the JIT OU), left open.
    """
    keep = {condition_key(dn) for dn in still}
    for c in conditions_open(prefix=PREFIX):
        if c.key in keep:
            continue
        group_dn = c.key[len(PREFIX):]
        named = Target.objects.filter(enabled=True, group_dn__startswith=group_dn).exists()
        failed = Grant.objects.filter(group_dn__startswith=group_dn,
                                      state__in=[Grant.State.GRANT_FAILED, Grant.State.REVOKE_FAILED]).exists()
        if named and directory.under_jit_ou(group_dn) and c.event != PRIVILEGED_EVENT:
            named = False  # the JIT OU setting now covers it: the seam accepts it again
        if not named and not failed:
            condition_resolve(key=c.key, event="group.not_managed_resolved",
                              subject=f"{directory.group_label(group_dn)} is no longer asked to be changed",
                              body=f"No enabled target names {group_dn} outside the JIT OU and no grant of it is failed.")
