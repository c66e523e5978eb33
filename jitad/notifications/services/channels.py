"""The two channels a delivery goes out on: e-mail through Django's mail backend, and apprise URLs.

Each send either returns (the destination took the message) or raises ``SendFailed``,
saying whether trying again may help. Nothing here touches the database.
"""
import smtplib

import apprise
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage

from ..models import Delivery, Notification
from .destinations import EMAIL_SCHEME, destination_urls, email_address, redact, scrub

_NOTIFY_TYPE = {
    Notification.Severity.INFO: apprise.NotifyType.INFO,
    Notification.Severity.WARNING: apprise.NotifyType.WARNING,
    Notification.Severity.CRITICAL: apprise.NotifyType.FAILURE,
}


class SendFailed(Exception):
    """A destination did not take the message; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True):
        super().__init__(message)
        self.retry = retry


def _text(note: Notification) -> str:
    return f"{note.body}\n\n{note.link}" if note.link else note.body


def send_email(address: str, note: Notification) -> None:
    """Send ``note`` as an e-mail to ``address``; a refusal of the address is final, others may pass."""
    message = EmailMessage(subject=f"[jitad] {note.subject}", body=_text(note), to=[address])
    try:
        message.send()
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as e:
        raise SendFailed(f"{type(e).__name__}: {e}", retry=False) from e
    except smtplib.SMTPResponseException as e:
        raise SendFailed(f"{type(e).__name__}: {e.smtp_code} {e.smtp_error!r}", retry=e.smtp_code < 500) from e
    except (smtplib.SMTPException, OSError) as e:  # refused, unreachable, timed out, TLS
        raise SendFailed(f"{type(e).__name__}: {e}") from e


def url_for(delivery: Delivery) -> str:
    """The real URL behind a delivery, read from the settings now; it must still be the one recorded."""
    urls = destination_urls(delivery.destination) or []
    candidates = urls[delivery.position:delivery.position + 1] + urls
    for url in candidates:
        if redact(url) == delivery.address:
            return url
    raise SendFailed(f"{delivery.destination} no longer holds this URL", retry=False)


def send_apprise(url: str, note: Notification) -> None:
    """Send ``note`` to one apprise URL (an ``email://`` one goes through Django's mail settings)."""
    if url.lower().startswith(EMAIL_SCHEME):
        try:
            send_email(email_address(url), note)
        except ValidationError as e:
            raise SendFailed("not a valid e-mail address", retry=False) from e
        return
    sender = apprise.Apprise()
    if not sender.add(url):
        raise SendFailed("not a URL apprise can send to", retry=False)
    timeout = settings.JITAD_DELIVERY_TIMEOUT
    kind = _NOTIFY_TYPE.get(note.severity, apprise.NotifyType.INFO)
    # Plain text, declared as such: apprise escapes it for each service (Slack's <url|label>
    # links and <!channel> mentions become entities, Teams' Markdown is backslash-escaped),
    # so nothing a requester or approver typed turns into a link, a mention or markup.
    # apprise applies the one format to the title as well.
    result = sender.notify(title=note.subject, body=_text(note), notify_type=kind, timeout=timeout,
                           body_format=apprise.NotifyFormat.TEXT)
    if result:
        return
    lines = [e.message for r in result.results for e in r.logs()] + [e.message for e in result.call_logs()]
    if result.status == apprise.AppriseResultStatus.TIMEOUT:
        lines.append(f"no answer within {timeout:g} s")
    raise SendFailed(scrub("; ".join(dict.fromkeys(lines)) or "refused or unreachable", url))
