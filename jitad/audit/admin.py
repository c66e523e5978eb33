"""Read-only audit trail in the admin: newest first, searchable by actor, object id and object name, exportable."""
import csv
import json

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Count, Max, Min
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path

from jitad.admin_helpers import ReadOnlyAdmin

from .models import AuditEvent, SiemCursor
from .selectors import audit_search
from .services import audit_record

EXPORT_FIELDS = ["seq", "at", "actor", "action", "object_type", "object_id", "before", "after", "reason", "data",
                 "prev_hash", "hash"]
EXPORT_PERMISSION = "audit.export_auditevent"


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streamed response."""

    def write(self, value):
        return value


def _csv_rows(qs):
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for ev in qs.iterator(chunk_size=2000):
        yield writer.writerow([ev.seq, ev.at.isoformat(), ev.actor, ev.action, ev.object_type, ev.object_id,
                               ev.before, ev.after, ev.reason,
                               json.dumps(ev.data, cls=DjangoJSONEncoder, sort_keys=True), ev.prev_hash, ev.hash])


def _jsonl_rows(qs):
    for ev in qs.iterator(chunk_size=2000):
        row = {name: getattr(ev, name) for name in EXPORT_FIELDS}
        yield json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True) + "\n"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "at", "actor", "action", "object_type", "object_id", "before", "after")
    list_filter = ("action", "object_type")
    search_fields = ("actor", "object_id")
    search_help_text = ("An actor, an object id (alerts: \"checkout:17\"), or the name of an object (a target, a "
                        "break-glass account such as bg-da-01) to find its events and its requests', grants' or "
                        "checkouts'.")
    date_hierarchy = "at"
    ordering = ("-seq",)
    show_full_result_count = False
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    change_list_template = "admin/audit/auditevent/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        return audit_search(queryset, search_term), False

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [path("export/", export, name="audit_auditevent_export"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_export": request.user.has_perm(EXPORT_PERMISSION),
                 "export_query": request.GET.urlencode()}
        return super().changelist_view(request, extra_context={**(extra_context or {}), **extra})

    def export_view(self, request):
        """The events the changelist's filters and search select, oldest first, as CSV or JSON lines (audited)."""
        if not (request.user.is_staff and request.user.has_perm(EXPORT_PERMISSION)):
            raise PermissionDenied
        params = request.GET.copy()
        fmt = params.pop("format", ["csv"])[-1]
        if fmt not in ("csv", "jsonl"):
            return HttpResponseBadRequest("format must be csv or jsonl")
        request.GET = params
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("the filters are not valid")
        qs = cl.get_queryset(request).order_by("seq")
        span = qs.aggregate(first=Min("seq"), last=Max("seq"), count=Count("id"))
        with transaction.atomic():
            audit_record(actor=request.user.get_username(), action="audit.exported", object_type="audit",
                         object_id=fmt, reason=f"export of {span['count']} event(s)",
                         data={"filters": params.urlencode(), **span})
        rows = _csv_rows(qs) if fmt == "csv" else _jsonl_rows(qs)
        response = StreamingHttpResponse(rows, content_type="text/csv" if fmt == "csv" else "application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="jitad-audit.{fmt}"'
        return response


@admin.register(SiemCursor)
class SiemCursorAdmin(ReadOnlyAdmin):
    list_display = ("name", "last_seq", "last_sent_at", "attempts", "next_attempt_at", "last_error")
    readonly_fields = [f.name for f in SiemCursor._meta.fields]
