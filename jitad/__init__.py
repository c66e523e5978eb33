"""jitad: just-in-time privileged access for Active Directory."""
from .celery import app as celery_app

__version__ = "0.9.0"  # CHANGELOG.md; the release a site runs, shown by /readyz and the admin

__all__ = ("__version__", "celery_app")
