"""REST API v1 routes. Each path works with and without a trailing slash; anything else is a JSON 404.

``(?:/)?`` rather than ``/?`` so the OpenAPI schema lists the paths without the slash.
"""
from django.urls import re_path

from . import delegations, views

app_name = "api"

ID = r"(?P<id>[^/]+)"
urlpatterns = [
    re_path(r"^eligibility(?:/)?$", views.EligibilityView.as_view(), name="eligibility"),
    re_path(r"^requests(?:/)?$", views.RequestListView.as_view(), name="requests"),
    re_path(rf"^requests/{ID}(?:/)?$", views.RequestDetailView.as_view(), name="request"),
    re_path(rf"^requests/{ID}/approve(?:/)?$", views.RequestApproveView.as_view(), name="request-approve"),
    re_path(rf"^requests/{ID}/deny(?:/)?$", views.RequestDenyView.as_view(), name="request-deny"),
    re_path(rf"^requests/{ID}/cancel(?:/)?$", views.RequestCancelView.as_view(), name="request-cancel"),
    re_path(rf"^requests/{ID}/release(?:/)?$", views.RequestReleaseView.as_view(), name="request-release"),
    re_path(rf"^requests/{ID}/extend(?:/)?$", views.RequestExtendView.as_view(), name="request-extend"),
    re_path(rf"^requests/{ID}/account(?:/)?$", views.RequestAccountView.as_view(), name="request-account"),
    re_path(r"^delegations(?:/)?$", delegations.DelegationListView.as_view(), name="delegations"),
    re_path(rf"^delegations/{ID}/revoke(?:/)?$", delegations.DelegationRevokeView.as_view(), name="delegation-revoke"),
    re_path(r"^", views.not_found, name="not-found"),
]
