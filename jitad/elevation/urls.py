"""The requester's pages (the REST API has its own urls in api/)."""
from django.urls import path

from . import approver_views, delegation_views, views

app_name = "elevation"
urlpatterns = [
    path("eligible/", views.eligible, name="eligible"),
    path("request/new/", views.request_new, name="request-new"),
    path("access/", views.access, name="access"),
    path("access/live/", views.access_live, name="access-live"),
    path("approvals/", approver_views.approvals, name="approvals"),
    path("approvals/live/", approver_views.approvals_live, name="approvals-live"),
    path("approvals/nav/", approver_views.approvals_nav, name="approvals-nav"),
    path("requests/<int:pk>/cancel/", views.request_cancel, name="request-cancel"),
    path("grants/<int:pk>/", views.grant_detail, name="grant"),
    path("grants/<int:pk>/evidence.json", views.grant_evidence, {"fmt": "json"}, name="grant-evidence-json"),
    path("grants/<int:pk>/evidence.csv", views.grant_evidence, {"fmt": "csv"}, name="grant-evidence-csv"),
    path("grants/<int:pk>/release/", views.grant_release, name="grant-release"),
    path("grants/<int:pk>/extend/", views.grant_extend, name="grant-extend"),
    path("grants/<int:pk>/account/", views.grant_account, name="grant-account"),
    path("deputies/", delegation_views.delegations, name="delegations"),
    path("deputies/<int:pk>/end/", delegation_views.delegation_end, name="delegation-end"),
]
