"""The break-glass pages (approvals, forced check-ins and reviews' closing are in the admin)."""
from django.urls import path

from . import views

app_name = "breakglass"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("accounts/<int:pk>/checkout/", views.checkout_new, name="checkout-new"),
    path("accounts/<int:pk>/envelope/", views.envelope_new, name="envelope-new"),
    path("checkouts/<int:pk>/", views.checkout_detail, name="checkout"),
    path("checkouts/<int:pk>/state/", views.checkout_state, name="checkout-state"),
    path("checkouts/<int:pk>/told/", views.checkout_told, name="checkout-told"),
    path("checkouts/<int:pk>/reveal/", views.checkout_reveal, name="checkout-reveal"),
    path("checkouts/<int:pk>/print/", views.envelope_print, name="envelope-print"),
    path("checkouts/<int:pk>/steps/<slug:step_id>/", views.checkout_tick, name="checkout-tick"),
    path("checkouts/<int:pk>/checkin/", views.checkout_checkin, name="checkout-checkin"),
    path("checkouts/<int:pk>/cancel/", views.checkout_cancel, name="checkout-cancel"),
    path("checkouts/<int:pk>/review/", views.checkout_review, name="checkout-review"),
    path("runbooks/", views.runbook_list, name="runbooks"),
    path("runbooks/<slug:slug>/", views.runbook_detail, name="runbook"),
]
