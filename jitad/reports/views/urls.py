"""Routes of the KPI pages (mounted under /reports/)."""
from django.urls import path, re_path

from . import pages

_KEY = "(?P<key>" + "|".join(pages.SECTIONS) + ")"

urlpatterns = [
    path("", pages.overview, name="overview"),
    path("report.json", pages.report_json, name="report-json"),
    path("report.md", pages.report_markdown, name="report-md"),
    re_path(rf"^{_KEY}/$", pages.section, name="section"),
    re_path(rf"^{_KEY}\.csv$", pages.section_csv, name="section-csv"),
]
