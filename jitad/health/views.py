"""/healthz (the process answers), /readyz (jitad can do its job) and /metrics (Prometheus).

None needs a login: a load balancer and Prometheus have none. /healthz tells nothing but
"ok". /readyz tells everyone its verdict by status code (200 ready, 503 not) and which
checks failed; only callers from JITAD_HEALTH_ALLOWED_NETWORKS get each check's detail and
the version. /metrics answers callers from JITAD_METRICS_ALLOWED_NETWORKS only, with the
bearer token JITAD_METRICS_TOKEN when it is set. The caller's address is the login
throttle's: X-Forwarded-For counts only from JITAD_TRUSTED_PROXIES.
"""
import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

import jitad
from jitad import metrics
from jitad.accounts.throttle import client_ip

from .readiness import CHECKS, readiness


@lru_cache(maxsize=8)
def _parsed(entries: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def caller_allowed(request, networks) -> bool:
    """Whether the request comes from one of ``networks`` (CIDR strings).

    A loopback address counts only as the connection's own peer, never as read from X-Forwarded-For:
    a trusted proxy that appends to the header (or a broad JITAD_TRUSTED_PROXIES) would otherwise pass
    on a caller's "127.0.0.1, ..." and make them local.
    """
    ip = client_ip(request)
    if not ip:
        return False
    address = ipaddress.ip_address(ip)
    if address.is_loopback and ip != request.META.get("REMOTE_ADDR"):
        return False
    return any(address.version == n.version and address in n for n in _parsed(tuple(networks)))


def _no_cache(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    return response


@require_safe
def healthz(request):
    """The process is alive and serves requests: no database, no network, nothing to leak."""
    return _no_cache(HttpResponse("ok", content_type="text/plain"))


@require_safe
def readyz(request):
    """200 when every check passes, 503 when one fails; ``?only=database,broker`` runs only those checks."""
    names = CHECKS
    only = request.GET.get("only")
    if only is not None:
        names = tuple(n.strip() for n in only.split(",") if n.strip())
        unknown = sorted(set(names) - set(CHECKS))
        if unknown or not names:
            return _no_cache(JsonResponse({"error": f"unknown check(s) {', '.join(unknown) or '(none named)'}; "
                                                    f"known: {', '.join(CHECKS)}"}, status=400))
    checks = readiness(names)
    ready = all(c.ok for c in checks)
    body = {"status": "ready" if ready else "unready"}
    if caller_allowed(request, settings.JITAD_HEALTH_ALLOWED_NETWORKS):
        body["version"] = jitad.__version__
        body["checks"] = {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}
    else:
        body["checks"] = {c.name: {"ok": c.ok} for c in checks}
    response = JsonResponse(body, status=200 if ready else 503)
    # Not logged as a server error: a load balancer asks every few seconds, and what is wrong is alerted
    # by the watchdog (and shown here).
    response._has_been_logged = True
    return _no_cache(response)


@require_safe
def metrics_view(request):
    """The Prometheus exposition, for allowed callers only."""
    if not caller_allowed(request, settings.JITAD_METRICS_ALLOWED_NETWORKS):
        return _no_cache(HttpResponse("metrics are not served to this address (JITAD_METRICS_ALLOWED_NETWORKS)\n",
                                      status=403, content_type="text/plain"))
    token = settings.JITAD_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("a bearer token is needed (JITAD_METRICS_TOKEN)\n", status=401,
                                    content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="jitad metrics"'
            return _no_cache(response)
    return _no_cache(HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE))
