"""Routes of the access-history pages (mounted under /reports/)."""
urlpatterns = []
