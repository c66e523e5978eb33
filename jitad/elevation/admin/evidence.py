"""Session evidence: the Security log events read for each grant, the signals they raised, and the pulls: read-only."""
from django.contrib import admin

from jitad.admin_helpers import ReadOnlyAdmin

from ..models import EvidencePull, SessionEvent, SessionSignal


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    """What a grant's accounts did on its server, as its Security log says."""

    list_display = ("at", "grant", "host", "event_id", "sid", "logon_type", "source", "process", "after_end", "record")
    list_filter = ("event_id", "after_end", "host")
    search_fields = ("grant__id", "host", "sid", "source", "process", "grant__user__username")
    list_select_related = ("grant",)
    date_hierarchy = "at"
    readonly_fields = [f.name for f in SessionEvent._meta.fields]


@admin.register(SessionSignal)
class SessionSignalAdmin(ReadOnlyAdmin):
    """Logons after a grant ended, log clearings, unexpected sources, elevations never used."""

    list_display = ("at", "kind", "severity", "grant", "detail", "event", "raised_at")
    list_filter = ("kind", "severity")
    search_fields = ("grant__id", "detail", "grant__user__username", "grant__target__name")
    list_select_related = ("grant", "event")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in SessionSignal._meta.fields]


@admin.register(EvidencePull)
class EvidencePullAdmin(ReadOnlyAdmin):
    """How far each grant's server was read, and whether the reading was cut or given up."""

    list_display = ("grant", "read_through", "reads", "stored", "cut", "gave_up", "finished_at", "next_attempt_at",
                    "attempts", "last_error")
    list_filter = ("cut", "gave_up", ("finished_at", admin.EmptyFieldListFilter))
    search_fields = ("grant__id", "grant__user__username", "grant__target__name")
    list_select_related = ("grant",)
    readonly_fields = [f.name for f in EvidencePull._meta.fields]
