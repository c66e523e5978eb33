"""REST API errors: always ``{"code": "...", "detail": "..."}`` with a 4xx status, never a 500 page."""
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .body_limits import TooLarge


def _first_code(codes) -> str:
    if isinstance(codes, dict):
        for v in codes.values():
            return _first_code(v)
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    return str(codes or "error")


def exception_handler(exc, context):
    """Every error as ``{"code", "detail"}`` (plus ``fields`` for validation errors)."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):  # Django's own size check, reached when DRF reads request.body
        exc = TooLarge(f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, TooManyFieldsSent):
        exc = exceptions.ParseError("The form has too many fields.", "too_many_fields")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        first = next(iter(fields.values()), ["Invalid input."])
        message = first[0] if isinstance(first, list) and first else first
        response.data = {"code": "invalid", "detail": str(message), "fields": fields}
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = _first_code(exc.get_codes()) if isinstance(exc, exceptions.APIException) else "error"
        response.data = {"code": code, "detail": str(detail)}
    return response


def error_response(code: str, detail: str, status: int = 400) -> Response:
    return Response({"code": code, "detail": detail}, status=status)
