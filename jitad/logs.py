"""How jitad's log lines look: plain text for a terminal, JSON lines for a log shipper, and no noise from idle sweeps.

``JITAD_LOG_FORMAT=json`` (ops' production environment) writes one JSON object per line:
``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``process``, and where there is
one the web request's ``request_id`` (the X-Request-ID the proxy sent, else a new one; sent
back in the response), the Celery task's ``task`` and ``task_id``, and the ``grant_id`` (or
``grant_ids``) it works on; ``exception`` holds a traceback. Plain text stays the default.

No log line carries a logon token, whatever the level: pywinrm's requests_kerberos and pyspnego log
the ``Authorization: Negotiate ...`` header and every GSSAPI/NTLM token at DEBUG (a Kerberos ticket,
or an NTLM response that can be cracked offline). Their loggers are held at INFO in settings, and
:class:`RedactTokensFilter` on the handler replaces any such token still in a line with ``[redacted]``.

Periodic work (the sweep every few seconds, the group watch every second, ...) logs nothing
at INFO when it did nothing: Celery's "received" line for it, and its "succeeded" line
when the result counts nothing, are left out (both still show at DEBUG). A sweep that
revoked something logs its counts as before.
"""
import contextvars
import json
import logging
import re
import time
import uuid

from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS
from django.core.signals import request_finished

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("jitad_request_id", default="")
task: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("jitad_task", default=("", ""))
grant: contextvars.ContextVar[object] = contextvars.ContextVar("jitad_grant", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The request id a proxy sent, when it is a plain token of at most 64 characters; else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give every request an id (the proxy's X-Request-ID, or a new one) for its log lines, and send it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id_from(request.headers.get("X-Request-ID"))
        # Kept until the request is finished, not only while the middleware runs: Django logs a refusal
        # or an error page ("Forbidden: /metrics") after the response has left every middleware.
        request_id.set(rid)
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response


def _request_finished(**kwargs) -> None:
    request_id.set("")


request_finished.connect(_request_finished, dispatch_uid="jitad.logs.request_finished")


def task_started(*, name: str, task_id: str, kwargs: dict | None, args=()) -> None:
    """Celery's task_prerun: what the task's log lines name (its grant from ``grant_id`` / ``grant_ids``)."""
    task.set((name or "", task_id or ""))
    kwargs = kwargs or {}
    found = kwargs.get("grant_id", kwargs.get("grant_ids"))
    if found is None and args and name.startswith("jitad.elevation.grant"):
        found = args[0]  # the grant tasks take the grant id (or ids) first
    grant.set(found if isinstance(found, (int, list)) else None)


def task_ended() -> None:
    task.set(("", ""))
    grant.set(None)


class ContextFilter(logging.Filter):
    """Put the request, task and grant of the current context on every record (empty when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.task, record.task_id = task.get()
        record.grant = grant.get()
        return True


_NONZERO = re.compile(r"(?<![\w.])(?:0*[1-9]\d*(?:\.\d+)?|0*\.\d*[1-9]\d*)(?![\w.])")
_ITEMS = re.compile(r"\[\s*'|\[\s*\"|\(\s*'")  # a list or tuple of names: something was named, so something happened

# Tasks sent by the scheduler again and again (filled by jitad.celery from beat's schedule).
periodic_tasks: set[str] = set()


def did_nothing(return_value: str) -> bool:
    """Whether a task's result, as Celery shows it, counts nothing: None, empty, or only zeros."""
    text = return_value.strip()
    return text in ("None", "", "{}", "[]", "()", "0", "False") or not (_NONZERO.search(text) or _ITEMS.search(text))


class QuietPeriodicFilter(logging.Filter):
    """Leave out Celery's INFO lines for periodic tasks that did nothing, unless the root logger shows DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.msg not in (LOG_RECEIVED, LOG_SUCCESS):
            return True
        args = record.args if isinstance(record.args, dict) else {}
        if args.get("name") not in periodic_tasks:
            return True
        if record.msg == LOG_SUCCESS and not did_nothing(str(args.get("return_value", ""))):
            return True
        return logging.getLogger().isEnabledFor(logging.DEBUG)


# "Negotiate <base64>", "Kerberos <base64>" (an Authorization or WWW-Authenticate value, however it is quoted):
# a token of 16 characters or more with a digit, + or / in it, so "Kerberos settings" stays as written;
# and whatever follows pyspnego's "... step output:" / "TSRequest input:".
_TOKENS = re.compile(
    r"(?i)\b((?:Negotiate|Kerberos|NTLM|CredSSP|Basic|Bearer)\s+)(?=[A-Za-z._~-]*[0-9+/])[A-Za-z0-9+/_.~-]{16,}=*"
    r"|\b((?:step|TSRequest)\s+(?:input|output):\s*)[A-Za-z0-9+/]{4,}=*")


def redact_tokens(text: str) -> str:
    """``text`` with every authentication token in it replaced by ``[redacted]``."""
    return _TOKENS.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)


class RedactTokensFilter(logging.Filter):
    """Replace logon tokens (Negotiate/Kerberos/NTLM headers, GSSAPI and NTLM messages) in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: logging reports it at emit
            return True
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; only what the record carries, and the context's ids when set."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key in ("request_id", "task", "task_id"):
            value = getattr(record, key, "")
            if value:
                out[key] = value
        found = getattr(record, "grant", None)
        if isinstance(found, list):
            out["grant_ids"] = found[:100]
        elif found is not None:
            out["grant_id"] = found
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)
