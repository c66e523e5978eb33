"""URL configuration.

Every page needs a login with a verified MFA device (jitad.accounts.middleware); the admin
is django-otp's OTPAdminSite; the REST API lives under /api/ with its own authentication.
"""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from jitad.admin_site import JitadAdminSite
from jitad.health.views import healthz, metrics_view, readyz

admin.site.__class__ = JitadAdminSite
admin.site.site_header = "jitad administration"
admin.site.site_title = "jitad"
admin.site.enable_nav_sidebar = False  # the approval queue needs the width

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="elevation:access", permanent=False), name="home"),
    path("healthz", healthz, name="health"),
    path("readyz", readyz, name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("account/", include("jitad.accounts.urls")),
    path("account/passkeys/", include("jitad.accounts.webauthn")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The docs page is a portal page (login + MFA via the middleware); the schema is an API call.
    # The split view serves Swagger UI's start-up script as a file (?script), not inline: the
    # page needs no script the Content-Security-Policy would have to let in.
    path("docs/api/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("jitad.reviews.urls")),  # /reviews/ and /api/v1/reviews: before the API's catch-all 404
    path("api/v1/mfa/", include("jitad.accounts.passkey_api")),
    path("api/v1/", include("jitad.reports.api.urls")),
    path("api/v1/", include("jitad.elevation.api.urls")),
    path("breakglass/", include("jitad.breakglass.urls")),
    path("reports/", include("jitad.reports.urls")),
    path("", include("jitad.elevation.urls")),
]
