"""Reports routes of the REST API v1 (mounted under /api/v1/ before the elevation routes and their JSON 404)."""
app_name = "reports-api"
urlpatterns = []
