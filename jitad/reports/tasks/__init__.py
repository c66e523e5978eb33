"""Celery tasks of the reports (thin: each calls one service). One module per kind of work, imported here."""
from . import retention  # noqa: F401
from .snapshots import snapshots_record_task

__all__ = ["snapshots_record_task"]
