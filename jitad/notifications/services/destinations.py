"""Where messages go: destinations named by the variable that holds their URLs, never by the URLs.

Apprise URLs carry secrets (a Slack or Teams webhook *is* a token). They stay in the
environment; the database and the logs see the variable's name, the URL's position in
it, and a masked form. Errors are scrubbed of every part of the URL the masked form
does not show.
"""
import re
from functools import lru_cache
from urllib.parse import unquote, urlsplit

import apprise
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from ..models import APPROVALS, NAMED_PREFIX, SECURITY  # the destinations' names, defined beside Delivery

# email://person@example.org sends through Django's mail settings (JITAD_EMAIL_URL), so
# one SMTP configuration serves people and channels alike.
EMAIL_SCHEME = "email://"


def named_destination(name: str) -> str:
    """The variable behind a policy's destination name: "dba-team" -> JITAD_NOTIFY_DBA_TEAM."""
    return NAMED_PREFIX + name.upper().replace("-", "_")


def destination_urls(destination: str) -> list[str] | None:
    """The URLs a destination variable holds now; None for a name jitad does not know."""
    if destination == SECURITY:
        return list(settings.JITAD_ALERT_URLS)
    if destination == APPROVALS:
        return list(settings.JITAD_APPROVAL_URLS)
    if destination.startswith(NAMED_PREFIX):
        key = destination[len(NAMED_PREFIX):].lower().replace("_", "-")
        urls = settings.JITAD_NOTIFY_DESTINATIONS.get(key)
        return list(urls) if urls is not None else None
    return None


def email_address(url: str) -> str:
    """The address of an email:// destination; ValidationError if it is not one."""
    address = unquote(url[len(EMAIL_SCHEME):]).strip().rstrip("/")
    validate_email(address)
    return address


def _mask(part: str) -> str:
    part = unquote(part)
    if not part or "..." in part or "*" in part:
        return part  # empty, or masked by apprise already
    return f"{part[0]}...{part[-1]}" if len(part) > 3 else "***"


@lru_cache(maxsize=512)
def redact(url: str) -> str | None:
    """``url`` as it may be shown and stored; None if it is not a URL jitad can send to.

    Apprise masks what each service treats as secret (passwords, tokens); on top of that
    every path segment is masked and the query string dropped, because generic webhooks
    (json://, form://, ...) carry tokens there that apprise cannot know about.
    """
    if url.lower().startswith(EMAIL_SCHEME):
        try:
            return EMAIL_SCHEME + email_address(url)
        except ValidationError:
            return None
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return None
    shown = plugin.url(privacy=True).split("?", 1)[0]
    scheme, _, rest = shown.partition("://")
    head, *path = rest.split("/")
    return f"{scheme}://" + "/".join([head, *(_mask(p) for p in path)]).rstrip("/")


def scrub(text: str, url: str) -> str:
    """``text`` with every part of ``url`` that its masked form does not show replaced by ****."""
    shown = redact(url) or ""
    forms = {url, unquote(url)}
    pieces = set(forms)
    for form in forms:
        pieces.update(p for p in re.split(r"[/:@?&=#,;+\s]+", form) if len(p) >= 4 and p not in shown)
    netloc = urlsplit(url).netloc
    if "@" in netloc:  # user:password as written, before any splitting
        pieces.add(netloc.rsplit("@", 1)[0])
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "****")
    return text
