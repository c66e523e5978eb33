"""The notification destinations a test session configures, all on 127.0.0.1.

One webhook receiver stands for every apprise destination, told apart by path. The
"secret" destination carries tokens the way real Slack/Teams webhooks do (in the path,
the password and a header) and always refuses, so its errors are recorded and logged:
tests check that none of the tokens ever appears.
"""
import uuid

from tests.support.webhook import WebhookReceiver

TOKENS = {
    "path": "xoxbPathToken" + uuid.uuid4().hex,
    "password": "PwToken" + uuid.uuid4().hex[:16],
    "header": "HdrToken" + uuid.uuid4().hex[:16],
}
SECRET_PATH = f"/services/T0JITAD/B0JITAD/{TOKENS['path']}"


def destination_env(receiver: WebhookReceiver) -> dict[str, str]:
    """Environment variables (as an operator would set them) for the session's destinations."""
    receiver.refuse_paths.update({"/broken", SECRET_PATH})
    receiver.hang_paths.add("/slow")
    secret = receiver.url_for(SECRET_PATH, userinfo=f"jitad:{TOKENS['password']}@") + f"?+X-Api-Key={TOKENS['header']}"
    return {
        "JITAD_ALERT_URLS": receiver.url,
        "JITAD_APPROVAL_URLS": receiver.url_for("/approvals"),
        "JITAD_NOTIFY_CHAT": receiver.url_for("/chat"),
        "JITAD_NOTIFY_BROKEN": receiver.url_for("/broken"),
        "JITAD_NOTIFY_SLOW": receiver.url_for("/slow"),
        "JITAD_NOTIFY_SECRET": secret,
        "JITAD_NOTIFY_TEAM_MAIL": "email://team@example.org",
    }


def named(env: dict[str, str]) -> dict[str, list[str]]:
    """JITAD_NOTIFY_DESTINATIONS as jitad/settings/notifications.py builds it from ``env``."""
    return {
        key[len("JITAD_NOTIFY_"):].lower().replace("_", "-"): [u for u in value.split(",") if u]
        for key, value in env.items() if key.startswith("JITAD_NOTIFY_")
    }
