"""Celery tasks of the reports (thin: each calls one service). One module per kind of work, imported here."""
from . import retention  # noqa: F401
