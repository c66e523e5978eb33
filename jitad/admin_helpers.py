"""What every app's admin pages share and no app owns: read-only model admins, durations.

It sits below every app (it knows none of them), so audit, elevation and break-glass
can all build on it; the admin site itself, which knows every app, is jitad.admin_site.
"""
from django.contrib import admin


def span(seconds: float) -> str:
    """A duration as people say it: "45 min", "3 h 10 min", "2 d 4 h"."""
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows nobody adds, edits or deletes in the admin (audit events, requests, grants):
    they change only through services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
