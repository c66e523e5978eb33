"""/metrics scraped over HTTP from a real gunicorn while a real worker moves a grant from active to revoked.

Web and worker share PROMETHEUS_MULTIPROC_DIR, as on a production machine: the worker's counters
(the DC's writes, the revocation's lateness) are read by the web's scrape.
"""
import http.client
import json
import uuid

from prometheus_client.parser import text_string_to_metric_families

from jitad.elevation import services
from jitad.elevation.models import Grant
from tests.support.processes import WebServer

from ..elevation.helpers import expire_now, wait_state

TOKEN = "scrape-" + uuid.uuid4().hex


def _get(web, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    c.request("GET", path, headers=headers or {})
    response = c.getresponse()
    response.body = response.read()
    c.close()
    return response


def _scrape(web) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    response = _get(web, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200, response.body[:500]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.body.decode()) for s in family.samples}


def _sum(samples, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


def test_the_key_series_follow_a_grant_from_active_to_revoked(nodes, make_user, make_target, tmp_path):
    """GIVEN gunicorn (two processes) and an engine worker with its scheduler sharing a metrics folder, and a
    scrape token WHEN /metrics is asked without the token THEN 401, and the refusal's log line is JSON with the
    request id the caller sent
    WHEN a grant goes active THEN the scrape shows one more active grant and the worker's LDAP writes
    WHEN it expires and is revoked THEN the active grant is gone, the lateness histogram counted one more
    revocation, and the sweep's last run is recent."""
    env = nodes.env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), JITAD_METRICS_TOKEN=TOKEN,
                    JITAD_LOG_FORMAT="json")
    worker = nodes.worker(env, beat=True)
    web = WebServer(env, nodes.logs / f"web-metrics-{uuid.uuid4().hex[:6]}.log", workers=2)
    nodes.started.append(web)
    web.start()

    refused = _get(web, "/metrics", {"X-Request-ID": "scrape-check-1"})
    assert refused.status == 401
    assert refused.getheader("X-Request-ID") == "scrape-check-1"
    lines = [json.loads(line) for line in web.log_text().splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "scrape-check-1" and line["level"] == "WARNING" for line in lines), \
        web.log_tail()

    before = _scrape(web)
    target = make_target()
    grant = services.request_create(requester=make_user("met", groups=("admins",)), target=target,
                                    duration_minutes=30).grant
    wait_state(grant.id, Grant.State.ACTIVE, timeout=90)
    active = _scrape(web)
    assert _sum(active, "jitad_grants", state="active") == _sum(before, "jitad_grants", state="active") + 1
    assert _sum(active, "jitad_dc_call_seconds_count", call="write") > _sum(before, "jitad_dc_call_seconds_count",
                                                                            call="write")
    assert _sum(active, "jitad_ready", check="database") == 1

    expire_now(grant.id)
    wait_state(grant.id, Grant.State.REVOKED, timeout=60)
    after = _scrape(web)
    assert _sum(after, "jitad_grants", state="active") == _sum(before, "jitad_grants", state="active")
    assert _sum(after, "jitad_revocation_lateness_seconds_count") == \
        _sum(active, "jitad_revocation_lateness_seconds_count") + 1
    assert _sum(after, "jitad_revocation_lateness_seconds_bucket", le="+Inf") == \
        _sum(after, "jitad_revocation_lateness_seconds_count")
    assert _sum(after, "jitad_pulse_timestamp_seconds", pulse="sweep") > _sum(before, "jitad_pulse_timestamp_seconds",
                                                                               pulse="sweep")

    # The worker's own lines are JSON too, and the revocation's name its grant.
    worker_lines = [json.loads(line) for line in worker.log_tail(10**7).splitlines() if line.startswith("{")]
    assert any(line.get("grant_ids") == [grant.id] or line.get("grant_id") == grant.id for line in worker_lines)
