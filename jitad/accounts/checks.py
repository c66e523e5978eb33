"""System checks for login and MFA settings."""
from django.conf import settings
from django.core import checks


def passkey_origin(app_configs, **kwargs):
    """A loopback base URL over http: passkeys work at http://localhost only; say so at start."""
    origin = getattr(settings, "JITAD_PASSKEY_LOOPBACK_ORIGIN", "")
    if not origin or settings.OTP_WEBAUTHN_ALLOWED_ORIGINS != [origin]:
        return []
    return [checks.Warning(
        f"JITAD_BASE_URL is {settings.JITAD_BASE_URL}: a passkey cannot be bound to an IP address, so passkeys "
        f"are bound to {origin} and work only when the portal is opened there (codes work at either address).",
        hint="For people on other machines set JITAD_BASE_URL to the https:// address they type.",
        id="jitad.W010",
    )]


def login_throttle(app_configs, **kwargs):
    """JITAD_TRUSTED_PROXIES must parse, and name the proxy jitad is behind; the per-account pause must come
    before AD's lockout."""
    from .throttle import proxy_problems

    found = [checks.Error(f"JITAD_TRUSTED_PROXIES: {p}", id="jitad.accounts.E001",
                          hint="A comma-separated list of addresses or networks, e.g. 10.0.0.5,192.0.2.0/28,2001:db8::/64")
             for p in proxy_problems(settings.JITAD_TRUSTED_PROXIES)]
    if getattr(settings, "JITAD_BEHIND_TLS_PROXY", False) and not any(str(e).strip() for e in settings.JITAD_TRUSTED_PROXIES):
        # Every request then comes from the proxy's address: its per-address delay would slow everyone
        # after a few strangers' wrong passwords, and it would be every person's "own" address.
        text = ("JITAD_BEHIND_TLS_PROXY is on but JITAD_TRUSTED_PROXIES is empty: every client has the proxy's "
                "address, so the login throttle's per-address delay slows everyone at once and the proxy counts "
                "as every person's own address")
        hint = ("Set JITAD_TRUSTED_PROXIES to the proxy's address(es), e.g. 10.0.0.5; or JITAD_BEHIND_TLS_PROXY=false "
                "if no proxy is in front of jitad (docs/logins.md)")
        found.append(checks.Error(text, hint=hint, id="jitad.accounts.E003") if settings.PRODUCTION
                     else checks.Warning(text, hint=hint, id="jitad.accounts.W003"))
    threshold = settings.JITAD_LOGIN_AD_LOCKOUT_THRESHOLD
    if settings.JITAD_LOGIN_MAX_FAILURES < 1 or settings.JITAD_LOGIN_FAILURE_WINDOW_SECONDS < 1:
        found.append(checks.Error("JITAD_LOGIN_MAX_FAILURES and JITAD_LOGIN_FAILURE_WINDOW_SECONDS must be 1 or more",
                                  id="jitad.accounts.E002"))
    elif threshold > 0 and settings.JITAD_LOGIN_MAX_FAILURES >= threshold - 1:
        found.append(checks.Error(
            f"JITAD_LOGIN_MAX_FAILURES ({settings.JITAD_LOGIN_MAX_FAILURES}) must be below "
            f"JITAD_LOGIN_AD_LOCKOUT_THRESHOLD - 1 ({threshold - 1}): otherwise wrong passwords from strangers use up "
            "every bind AD allows and the person cannot log in from their own address either",
            hint="docs/logins.md", id="jitad.accounts.E002"))
    return found
