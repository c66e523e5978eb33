"""Routes of the access-history pages (mounted under /reports/)."""
from django.urls import path

from . import views

urlpatterns = [
    path("history/", views.history, name="history"),
]
