"""jitad: just-in-time privileged access for Active Directory."""
from .celery import app as celery_app

__all__ = ("celery_app",)
