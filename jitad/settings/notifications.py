"""Notifications: the security channel and its digest, approval destinations, named destinations,
delivery retries and timeouts, expiry warnings, and e-mail through Django's mail backend."""
import os

from .env import PRODUCTION, VAR_DIR, env, refuse

# --- Notifications (jitad.notifications; docs/notifications.md) ----------------------
# Destinations are apprise URLs (slack://, workflows:// for Teams, json://, mailto://, ...)
# or email://person@example.org (sent through the mail settings below). They stay in the
# environment: the database keeps only the variable's name and a masked form of each URL.
# The security channel: failures, out-of-band members, MFA changes, break-glass.
JITAD_ALERT_URLS = env.list("JITAD_ALERT_URLS", default=[])
if PRODUCTION and not JITAD_ALERT_URLS:
    # Without it, failed revocations, out-of-band members and break-glass emergencies reach nobody.
    refuse(
        "JITAD_ALERT_URLS must be set in production: the security channel (failed revocations, out-of-band "
        "members, break-glass emergencies) needs at least one destination, an apprise URL or email://address"
    )
# Routine security events (people enrolling MFA, making backup codes or API tokens) wait and
# go to each destination as one digest every JITAD_ALERT_DIGEST_MINUTES, counted by kind with
# the people named (each event is in the audit trail anyway); 0 sends each at once. Events of
# privileged people (approvers, break-glass responders, staff) and everything else go at once.
JITAD_ALERT_DIGEST_MINUTES = env.float("JITAD_ALERT_DIGEST_MINUTES", default=15.0)
if JITAD_ALERT_DIGEST_MINUTES < 0:
    refuse("JITAD_ALERT_DIGEST_MINUTES must be 0 (send each alert at once) or more")
# New requests to decide, when the request's policy names no destination of its own.
JITAD_APPROVAL_URLS = env.list("JITAD_APPROVAL_URLS", default=[])
# Named destinations a policy may send its approval requests to: JITAD_NOTIFY_<NAME>=url[,url]
# becomes JITAD_NOTIFY_DESTINATIONS["<name>"] (lower case, "_" read as "-"). The URLs stay in
# the environment: policy files and the database hold only the names.
JITAD_NOTIFY_DESTINATIONS = {
    key[len("JITAD_NOTIFY_"):].lower().replace("_", "-"): [u.strip() for u in value.split(",") if u.strip()]
    for key, value in os.environ.items()
    if key.startswith("JITAD_NOTIFY_") and len(key) > len("JITAD_NOTIFY_")
}
# Each delivery is one worker task: attempts before it is marked failed, the exponential
# backoff (with jitter) between them, and how long one attempt may take.
JITAD_DELIVERY_MAX_ATTEMPTS = env.int("JITAD_DELIVERY_MAX_ATTEMPTS", default=5)
JITAD_DELIVERY_RETRY_BASE_SECONDS = env.float("JITAD_DELIVERY_RETRY_BASE_SECONDS", default=30.0)
JITAD_DELIVERY_RETRY_MAX_SECONDS = env.float("JITAD_DELIVERY_RETRY_MAX_SECONDS", default=900.0)
JITAD_DELIVERY_TIMEOUT = env.float("JITAD_DELIVERY_TIMEOUT", default=20.0)
# The e-mails of one batch (a revocation batch's notices) go out this many at a time over one
# SMTP session each; a larger batch becomes several messages of this size.
JITAD_EMAIL_BATCH = env.int("JITAD_EMAIL_BATCH", default=50)
if not 1 <= JITAD_EMAIL_BATCH <= 1000:
    refuse("JITAD_EMAIL_BATCH must be between 1 and 1000 (e-mails per SMTP session)")
# People's notice e-mails wait while revocations run (a mass expiry: removals first, then the
# e-mails, each person's notices together), at most this many seconds from the notice; 0: never wait.
JITAD_NOTICES_WAIT_SECONDS = env.float("JITAD_NOTICES_WAIT_SECONDS", default=30.0)
if not 0 <= JITAD_NOTICES_WAIT_SECONDS <= 600:
    refuse("JITAD_NOTICES_WAIT_SECONDS must be between 0 (never wait) and 600")
# Notices of one kind to one person that are waiting together (a mass expiry tells each holder of
# each group) go out as one e-mail listing them all, up to this many; 1 sends each on its own.
JITAD_EMAIL_COMBINE_MAX = env.int("JITAD_EMAIL_COMBINE_MAX", default=100)
if not 1 <= JITAD_EMAIL_COMBINE_MAX <= 1000:
    refuse("JITAD_EMAIL_COMBINE_MAX must be between 1 and 1000 (notices per e-mail)")
# Beat re-sends deliveries whose task message was lost (broker restart, worker killed), and
# sends the digests that are due, this often.
JITAD_DELIVERY_CHECK_INTERVAL = env.float("JITAD_DELIVERY_CHECK_INTERVAL", default=60.0)
# Tell holders this many minutes before a grant ends (0: never), checked every interval.
JITAD_EXPIRY_WARNING_MINUTES = env.int("JITAD_EXPIRY_WARNING_MINUTES", default=15)
JITAD_EXPIRY_CHECK_INTERVAL = env.float("JITAD_EXPIRY_CHECK_INTERVAL", default=60.0)

# E-mail to people (requesters, approvers) goes through Django's mail backend. Production:
# JITAD_EMAIL_URL=smtp+tls://user:password@smtp.corp.example:587 (or smtps://, smtp://).
# Without it, mail is written to files under JITAD_VAR_DIR/mail, and nothing leaves the machine.
try:
    _email = None
    if "JITAD_EMAIL_URL" in env:
        if env.str("JITAD_EMAIL_URL").split("://", 1)[0] not in env.EMAIL_SCHEMES:
            raise ValueError("not a scheme django-environ knows")
        _email = env.email_url("JITAD_EMAIL_URL")
except (KeyError, ValueError):
    # The URL is not quoted back: it may carry the SMTP password.
    refuse("JITAD_EMAIL_URL is not a mail URL (smtp+tls://user:password@host:587, smtps://, smtp://)")
    _email = None
if _email:
    globals().update(_email)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("JITAD_EMAIL_FROM", default="jitad@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = JITAD_DELIVERY_TIMEOUT
