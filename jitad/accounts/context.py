"""Template context: the session's MFA freshness, so forms can ask for a code up front."""
from django.conf import settings

from .mfa import mfa_is_fresh


def mfa(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "mfa_fresh": mfa_is_fresh(request),
        "mfa_fresh_minutes": settings.JITAD_MFA_FRESH_SECONDS // 60,
    }
