"""REST API v1 for requests and grants."""
