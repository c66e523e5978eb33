"""The access-history page (/reports/history/): who held a target's right, or what a person held, and through what."""
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import reverse

from .forms import HistoryForm
from .rows import Holding, Source
from .selectors import access_at

PERMISSION = "reports.view_reports"
MAX_ROWS = 1000  # a page this long is a question to narrow; the API pages through any number

# Where each source's record is in the admin: (admin URL name, evidence key of the id).
ADMIN_LINKS = {
    Source.GRANT: [("admin:elevation_grant_change", "grant_id", "grant"),
                   ("admin:elevation_accessrequest_change", "request_id", "request")],
    Source.STANDING: [("admin:elevation_standingadmin_change", "finding_id", "finding"),
                      ("admin:audit_auditevent_change", "found_event_id", "audit event")],
    Source.OUT_OF_BAND: [("admin:audit_auditevent_change", "audit_event_id", "audit event")],
    Source.HELD: [("admin:elevation_heldremoval_change", "held_removal_id", "held removal")],
    Source.BREAKGLASS: [("admin:breakglass_checkout_change", "checkout_id", "checkout")],
}


def admin_links(row: Holding) -> list[tuple[str, str]]:
    """(label, URL) of the admin pages behind a row."""
    links = []
    for name, key, label in ADMIN_LINKS.get(row.source, []):
        pk = row.evidence.get(key)
        if pk is not None:
            links.append((f"{label} #{pk}", reverse(name, args=[pk])))
    return links


def history(request):
    """GET: the form, and the rows when the form is filled in and valid (never a 500 on bad input)."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("Access history needs the view_reports permission.")
    # The form always sends every field; a link that names only a target or a person pre-fills it.
    asked = any(k in request.GET for k in ("at", "start", "end"))
    prefill = {k: request.GET.get(k, "")[:150] for k in ("target", "person")}
    form = HistoryForm(request.GET) if asked else HistoryForm(initial=prefill)
    rows, truncated = None, False
    if asked and form.is_valid():
        data = form.cleaned_data
        found = access_at(target=data["target"], person=data["person"], start=data["start"], end=data["end"])
        truncated = len(found) > MAX_ROWS
        rows = [(h, admin_links(h)) for h in found[:MAX_ROWS]]
    return render(request, "reports/history.html", {
        "form": form, "rows": rows, "truncated": truncated, "max_rows": MAX_ROWS,
        "query": form.cleaned_data if rows is not None else None,
    })
