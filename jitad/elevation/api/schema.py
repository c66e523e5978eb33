"""OpenAPI descriptions of jitad's API authentication, for drf-spectacular (registered on import)."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "jitad.accounts.api.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "jitad_<prefix>_<secret>",
            "description": "A personal API token from your account page. It authenticates; every "
                           "state-changing call also needs a current OTP code in `otp`.",
        }


class VerifiedSessionScheme(OpenApiAuthenticationExtension):
    target_class = "jitad.accounts.api.VerifiedSessionAuthentication"
    name = "portalSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "The portal's session, once MFA verified it (for the browsable API)."}
