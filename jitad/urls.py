"""URL configuration. The portal (login, MFA, self-service) arrives with its own app."""
from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
