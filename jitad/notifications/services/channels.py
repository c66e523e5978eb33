"""The two channels a delivery goes out on: e-mail through Django's mail backend, and apprise URLs.

Each send either returns (the destination took the message) or raises ``SendFailed``,
saying whether trying again may help. Nothing here touches the database.
"""
import smtplib
import time

import apprise
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection

from ..models import Delivery, Notification
from .destinations import EMAIL_SCHEME, destination_urls, email_address, redact, scrub

_NOTIFY_TYPE = {
    Notification.Severity.INFO: apprise.NotifyType.INFO,
    Notification.Severity.WARNING: apprise.NotifyType.WARNING,
    Notification.Severity.CRITICAL: apprise.NotifyType.FAILURE,
}


SKIPPED = object()  # send_emails: an item whose notes its caller no longer held (nothing was sent)


class SendFailed(Exception):
    """A destination did not take the message; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True):
        super().__init__(message)
        self.retry = retry


def _text(note: Notification) -> str:
    return f"{note.body}\n\n{note.link}" if note.link else note.body


def _send_one(message: EmailMessage, connection=None) -> None:
    """Send one message (opening ``connection`` first if it is closed, and leaving it open); a refusal
    of the address is final, others may pass."""
    try:
        if connection is not None:
            connection.open()  # a no-op while open; then send() neither opens nor closes it
        message.send()
    except smtplib.SMTPRecipientsRefused as e:  # final for a 5xx; a 4xx (greylisting, a rate limit) passes
        codes = [code for code, _text in e.recipients.values()] or [550]
        raise SendFailed(f"{type(e).__name__}: {e}", retry=all(code < 500 for code in codes)) from e
    except smtplib.SMTPSenderRefused as e:
        raise SendFailed(f"{type(e).__name__}: {e}", retry=e.smtp_code < 500) from e
    except smtplib.SMTPResponseException as e:
        raise SendFailed(f"{type(e).__name__}: {e.smtp_code} {e.smtp_error!r}", retry=e.smtp_code < 500) from e
    except (smtplib.SMTPException, OSError) as e:  # refused, unreachable, timed out, TLS
        raise SendFailed(f"{type(e).__name__}: {e}") from e


def send_email(address: str, note: Notification) -> None:
    """Send ``note`` as an e-mail to ``address`` (a connection of its own)."""
    _send_one(EmailMessage(subject=f"[jitad] {note.subject}", body=_text(note), to=[address]))


def _combined(notes: list[Notification]) -> tuple[str, str]:
    """(subject, body) of one e-mail that carries several notices of one kind to one person."""
    if len(notes) == 1:
        return notes[0].subject, _text(notes[0])
    first = notes[0]
    parts = [f"jitad has {len(notes)} notices of this kind for you, sent together:"]
    for k, note in enumerate(notes, start=1):
        parts.append(f"{k}. {note.subject}\n{_text(note)}")
    return f"{first.subject} (and {len(notes) - 1} more)", "\n\n".join(parts)


def send_emails(items: list[tuple[str, list[Notification]]], *, deadline: float, starting=None):
    """Send each (address, notes) as one e-mail over one connection, yielding each one's outcome in order.

    A mass expiry's notices go out a chunk at a time this way rather than one SMTP session
    per message; the notices of one item (one kind, one person) are listed in one e-mail. A
    message the server refuses for good (5xx) is that message's failure only and the session
    goes on; after any other failure (a 4xx such as a rate limit or a 421 closing the session,
    a dropped connection, a timeout) the next message opens a new one. ``starting(i)`` is
    called before item ``i`` goes out and returns the notes still to send (those its caller
    still holds); none: ``SKIPPED`` is yielded and nothing is sent. No message is started past
    ``deadline`` (time.monotonic()): the caller hands back those it got no outcome for. Left
    early (the task's time limit), the socket is dropped without the polite QUIT, which could
    itself wait a whole timeout.
    """
    connection = get_connection()
    clean = False
    try:
        for i, (address, notes) in enumerate(items):
            if time.monotonic() >= deadline:
                break
            notes = starting(i) if starting is not None else notes
            if not notes:
                yield SKIPPED
                continue
            subject, body = _combined(notes)
            try:
                _send_one(EmailMessage(subject=f"[jitad] {subject}", body=body, to=[address],
                                       connection=connection), connection)
                yield None
            except SendFailed as e:
                if e.retry:  # the session may be gone: start the next message afresh
                    _close_quietly(connection)
                yield e
        clean = True
    finally:
        if clean:
            _close_quietly(connection)
        else:
            _drop(connection)


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except (smtplib.SMTPException, OSError):
        _drop(connection)


def _drop(connection) -> None:
    """Close the socket under Django's backend, if it has one, without a word to the server."""
    smtp = getattr(connection, "connection", None)
    if smtp is not None:
        try:
            smtp.close()  # smtplib's close(): the socket only, no QUIT
        except OSError:
            pass
        connection.connection = None


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
