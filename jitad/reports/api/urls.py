"""Reports routes of the REST API v1 (mounted under /api/v1/ before the elevation routes and their JSON 404)."""
from django.urls import re_path

from . import views

app_name = "reports-api"
urlpatterns = [
    re_path(r"^access-history(?:/)?$", views.AccessHistoryView.as_view(), name="access-history"),
]
