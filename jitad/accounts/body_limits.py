"""Request bodies within bounds: a JSON body too deep or any body too big is a 4xx, never a 500.

Python's json module recurses once per nesting level, so a body of 50,000 ``[`` raises
RecursionError inside the parser. The depth is therefore counted first, without recursion
and without decoding, and the body is refused before any parser sees it. Both the REST API
(its parsers below, named in REST_FRAMEWORK) and every other view that reads JSON (the
passkey ceremonies; JsonBodyLimitMiddleware) use the same check and the same limits:
JITAD_JSON_MAX_DEPTH levels and JITAD_MAX_BODY_BYTES bytes (also Django's
DATA_UPLOAD_MAX_MEMORY_SIZE for forms).
"""
import io
import re

from django.conf import settings
from django.http import JsonResponse
from rest_framework import exceptions, parsers

# A JSON string (escapes included) or one bracket. Strings are skipped whole, so a bracket
# inside a string never counts. An unterminated string runs to the end of the body (the
# closing quote is optional), which keeps the scan linear whatever the input.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class BodyRejected(Exception):
    """A body outside the limits; ``status``, ``code`` and ``detail`` are the API error."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _too_large(limit: int) -> BodyRejected:
    return BodyRejected(413, "too_large", f"The request body is larger than {limit} bytes.")


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (malformed JSON is left to the parser)."""
    depth = deepest = 0
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def json_body_check(raw: bytes) -> None:
    """Raise BodyRejected when ``raw`` is over the size limit or nested deeper than the depth limit."""
    if len(raw) > settings.JITAD_MAX_BODY_BYTES:
        raise _too_large(settings.JITAD_MAX_BODY_BYTES)
    limit = settings.JITAD_JSON_MAX_DEPTH
    # Cheap bound first: fewer brackets than the limit can't nest deeper than it.
    if raw.count(b"[") + raw.count(b"{") > limit and json_depth(raw) > limit:
        raise BodyRejected(400, "too_deep", f"JSON may nest arrays and objects at most {limit} levels deep.")


def _read_bounded(stream) -> bytes:
    limit = settings.JITAD_MAX_BODY_BYTES
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


class TooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "too_large"


def _as_api_error(exc: BodyRejected) -> exceptions.APIException:
    if exc.status == 413:
        return TooLarge(exc.detail, exc.code)
    return exceptions.ParseError(exc.detail, exc.code)


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSON parser behind the size and depth limits."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            raw = _read_bounded(stream)
            json_body_check(raw)
        except BodyRejected as exc:
            raise _as_api_error(exc) from None
        return super().parse(io.BytesIO(raw), media_type, parser_context)


class BoundedFormParser(parsers.FormParser):
    """DRF's form parser behind the size limit (DRF reads the stream itself, past Django's check)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            raw = _read_bounded(stream)
        except BodyRejected as exc:
            raise _as_api_error(exc) from None
        return super().parse(io.BytesIO(raw), media_type, parser_context)


def _is_json(request) -> bool:
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


class JsonBodyLimitMiddleware:
    """JSON bodies outside the REST API (the passkey ceremonies) pass the same limits before any view.

    The REST API is left to its parsers, which answer in its error shape with the same limits.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method not in ("GET", "HEAD", "OPTIONS") and _is_json(request) \
                and not request.path_info.startswith("/api/"):
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            try:
                if declared > settings.JITAD_MAX_BODY_BYTES:
                    raise _too_large(settings.JITAD_MAX_BODY_BYTES)
                json_body_check(request.body)
            except BodyRejected as exc:
                return JsonResponse({"code": exc.code, "detail": exc.detail}, status=exc.status)
        return self.get_response(request)
