"""Routes of the KPI pages (mounted under /reports/)."""
urlpatterns = []
