"""/readyz over HTTP from a real web server, while the parts it checks really stop: the DC, the broker, the sweep.

jitad runs as in production on machines of its own (tests.support.processes): gunicorn, an engine
worker with its elected scheduler, a Redis of the test's own, and the session's Samba DC.
"""
import http.client
import json
import time

from tests.conftest import ARTIFACTS
from tests.support.processes import RedisServer
from tests.support.waiting import wait_for


def _ready(web) -> tuple[int, dict, float]:
    """(status, body, seconds the answer took) of GET /readyz."""
    started = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    try:
        c.request("GET", "/readyz")
        response = c.getresponse()
        return response.status, json.loads(response.read()), time.monotonic() - started
    finally:
        c.close()


def _failing(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


def _until(web, predicate, message: str, timeout: float = 60) -> tuple[int, dict, float]:
    seen = {}

    def check():
        seen["last"] = _ready(web)
        return predicate(*seen["last"][:2])

    wait_for(check, timeout=timeout, interval=0.3, message=f"{message}; last answer: {seen.get('last')}")
    return seen["last"]


def test_readyz_turns_unready_when_the_dc_the_broker_or_the_sweep_stops(nodes, samba_dc, tmp_path):
    """GIVEN gunicorn, an engine worker with its scheduler and a Redis of their own, and the session's DC
    THEN /readyz answers 200 with every check passing
    WHEN the DC freezes (SIGSTOP) THEN 503 naming the directory alone, within seconds (the probe's time
    limit, not the frozen socket's), and 200 again once it thaws
    WHEN the DC stops THEN 503 naming the directory; 200 again once it runs
    WHEN Redis stops THEN 503 naming the broker; 200 again once it runs
    WHEN the worker (and its scheduler) is killed THEN 503 naming the sweep once the last one is older than
    JITAD_SWEEP_STALE_SECONDS, while the database, the broker and the DC still pass."""
    redis = RedisServer(tmp_path / "redis", ARTIFACTS / "engine" / "redis-ready.log").start()
    nodes.started.append(redis)
    env = nodes.env(CELERY_BROKER_URL=redis.url, JITAD_READY_TIMEOUT=1, JITAD_READY_CACHE_SECONDS=0)
    worker = nodes.worker(env, beat=True)
    web = nodes.web(env)
    status, body, _ = _until(web, lambda s, b: s == 200, "ready with every part running")
    assert set(body["checks"]) == {"database", "broker", "directory", "sweep", "deliveries", "siem"}
    assert samba_dc.admin_password not in json.dumps(body)

    samba_dc.pause()
    try:
        status, body, took = _ready(web)
        assert status == 503 and _failing(body) == {"directory"}, body
        assert took < 10, f"/readyz took {took:.1f} s with the DC frozen"
    finally:
        samba_dc.resume()
    _until(web, lambda s, b: s == 200, "ready again once the DC thawed")

    samba_dc.stop()
    try:
        status, body, _ = _until(web, lambda s, b: s == 503, "unready with the DC stopped")
        assert _failing(body) == {"directory"}, body
    finally:
        samba_dc.start()
    _until(web, lambda s, b: s == 200, "ready again once the DC runs")

    redis.stop()
    try:
        status, body, took = _until(web, lambda s, b: "broker" in _failing(b), "the broker named while Redis is down")
        assert status == 503 and took < 10
    finally:
        redis.start()
    _until(web, lambda s, b: s == 200, "ready again once Redis runs", timeout=90)

    worker.kill()
    status, body, _ = _until(web, lambda s, b: s == 503, "unready once sweeps stopped")
    assert _failing(body) == {"sweep"}, body
    assert "the last sweep ended" in body["checks"]["sweep"]["detail"]
