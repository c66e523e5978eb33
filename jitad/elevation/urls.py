from django.urls import path
from django.views.generic import TemplateView

app_name = "elevation"
urlpatterns = [
    path("access/", TemplateView.as_view(template_name="base.html"), name="access"),
    path("eligible/", TemplateView.as_view(template_name="base.html"), name="eligible"),
]
