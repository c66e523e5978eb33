"""Reports in the REST API v1."""
