"""The rows behind the standing trend and baseline, read-only, so a report's records links open them."""
from django.contrib import admin

from jitad.admin_helpers import ReadOnlyAdmin

from .models import DailySnapshot, RightBaseline


@admin.register(DailySnapshot)
class DailySnapshotAdmin(ReadOnlyAdmin):
    """One target's figures for one day: what the trends are drawn from."""

    list_display = ("day", "target", "tier", "standing_principals", "jit_principals", "jit_principal_hours",
                    "standing_principal_hours", "grants_started", "backfilled")
    list_filter = ("tier", "backfilled", "target")
    date_hierarchy = "day"
    list_select_related = ("target",)


@admin.register(RightBaseline)
class RightBaselineAdmin(ReadOnlyAdmin):
    """The first scan and the first reading of each managed right: the reduction's baseline."""

    list_display = ("group_dn", "target", "first_scan_at", "first_scan_standing", "first_reading_at",
                    "first_reading_members", "first_reading_unbacked")
    list_select_related = ("target",)
    search_fields = ("group_dn", "target__name")
