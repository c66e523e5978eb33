"""The Reports area (/reports/): KPI pages and access history."""
from .history.urls import urlpatterns as history_urlpatterns
from .views.urls import urlpatterns as kpi_urlpatterns

app_name = "reports"
urlpatterns = [*kpi_urlpatterns, *history_urlpatterns]
