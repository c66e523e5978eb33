"""/healthz, /readyz and /metrics in this process: what each answers, to whom, and with what status.

The checks against real stopped parts (a DC, Redis, the sweep) are in test_readiness.py.
"""
import json
import re
import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jitad.engine.models import Pulse
from jitad.health.readiness import readiness_forget


@pytest.fixture(autouse=True)
def _fresh_answers(settings):
    settings.JITAD_READY_CACHE_SECONDS = 0
    readiness_forget()
    yield
    readiness_forget()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_answers_without_touching_the_database(client):
    """GIVEN no database access allowed (pytest-django raises on any query) WHEN /healthz is asked THEN 200 "ok",
    not cached by anyone."""
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_names_each_check_and_the_version_to_allowed_callers_only(client, settings):
    """GIVEN a sweep that ended a second ago WHEN /readyz?only=database,broker,sweep is asked from loopback THEN
    200 with each check's detail and jitad's version; from another network THEN the same verdict and check
    names, without details or version."""
    import jitad

    Pulse.objects.update_or_create(name="sweep", defaults={"at": timezone.now() - timedelta(seconds=1)})
    response = client.get("/readyz?only=database,broker,sweep")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["version"] == jitad.__version__
    assert list(body["checks"]) == ["database", "broker", "sweep"]
    assert all(c["ok"] and c["detail"] for c in body["checks"].values())

    outside = client.get("/readyz?only=database,broker,sweep", REMOTE_ADDR="192.0.2.10")
    assert outside.status_code == 200
    assert outside.json() == {"status": "ready", "checks": {n: {"ok": True} for n in ("database", "broker", "sweep")}}

    settings.JITAD_HEALTH_ALLOWED_NETWORKS = ["192.0.2.0/24"]
    assert "version" in client.get("/readyz?only=database", REMOTE_ADDR="192.0.2.10").json()
    assert "version" not in client.get("/readyz?only=database").json()  # loopback is no longer listed


@pytest.mark.django_db
def test_readyz_is_unready_while_the_sweep_is_stale_or_never_ran(client, settings):
    """GIVEN no sweep ever THEN 503 naming the sweep; GIVEN the last one older than JITAD_SWEEP_STALE_SECONDS
    THEN 503; GIVEN a recent one THEN 200."""
    Pulse.objects.filter(name="sweep").delete()
    response = client.get("/readyz?only=sweep")
    assert response.status_code == 503
    assert response.json()["checks"]["sweep"]["ok"] is False
    assert "no sweep has run" in response.json()["checks"]["sweep"]["detail"]

    stale = settings.JITAD_SWEEP_STALE_SECONDS
    Pulse.objects.create(name="sweep", at=timezone.now() - timedelta(seconds=stale + 5))
    assert client.get("/readyz?only=sweep").status_code == 503
    Pulse.objects.filter(name="sweep").update(at=timezone.now())
    assert client.get("/readyz?only=sweep").status_code == 200


@pytest.mark.django_db
def test_readyz_reads_the_tables_at_most_once_per_period_whoever_asks(client, settings):
    """GIVEN answers reused for a minute WHEN anyone asks /readyz again and again THEN the sweep's age is read
    once (the verdict stays until the period ends or the answers are dropped), while the database's own link is
    asked each time: an anonymous caller cannot choose how often jitad reads its tables."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.JITAD_READY_CACHE_SECONDS = 60
    Pulse.objects.update_or_create(name="sweep", defaults={"at": timezone.now()})
    assert client.get("/readyz?only=database,sweep", REMOTE_ADDR="192.0.2.10").status_code == 200
    Pulse.objects.filter(name="sweep").delete()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert client.get("/readyz?only=database,sweep", REMOTE_ADDR="192.0.2.10").status_code == 200
    assert not [q for q in queries.captured_queries if "pulse" in q["sql"].lower()]
    assert len([q for q in queries.captured_queries if q["sql"].strip().upper() == "SELECT 1"]) == 5
    readiness_forget()
    assert client.get("/readyz?only=sweep").status_code == 503


@pytest.mark.django_db
def test_probes_and_scrapes_over_plain_http_are_answered_not_redirected(client, settings):
    """GIVEN production's redirect of plain HTTP to HTTPS WHEN a load balancer probes /healthz or /readyz, or
    Prometheus scrapes /metrics, over plain HTTP THEN each is answered (a redirected probe reads as down); a
    page is still redirected."""
    settings.SECURE_SSL_REDIRECT = True
    Pulse.objects.update_or_create(name="sweep", defaults={"at": timezone.now()})
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz?only=database,sweep").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/accounts/login/").status_code == 301


@pytest.mark.django_db
def test_readyz_is_unready_while_a_due_delivery_waits_too_long(client, settings):
    from jitad.notifications.models import Delivery, Notification

    note = Notification.objects.create(event="test.backlog", subject="s", body="b")
    Delivery.objects.create(notification=note, channel=Delivery.Channel.APPRISE, destination="JITAD_ALERT_URLS",
                            next_attempt_at=timezone.now() - timedelta(seconds=settings.JITAD_READY_DELIVERY_LAG_SECONDS + 60))
    response = client.get("/readyz?only=deliveries")
    assert response.status_code == 503
    assert "the oldest due delivery has waited" in response.json()["checks"]["deliveries"]["detail"]
    Delivery.objects.filter(notification=note).update(state=Delivery.State.SENT)
    assert client.get("/readyz?only=deliveries").status_code == 200


@pytest.mark.django_db
def test_readyz_refuses_an_unknown_check_clearly(client):
    response = client.get("/readyz?only=database,nonsense")
    assert response.status_code == 400
    assert "nonsense" in response.json()["error"] and "database" in response.json()["error"]
    assert client.get("/readyz?only=").status_code == 400


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_is_unready_in_time_and_its_password_is_never_shown(client, settings):
    """GIVEN a Redis broker URL with a password and nothing listening WHEN /readyz is asked THEN 503 within the
    time limit, naming host and port but never the password."""
    port = _closed_port()
    settings.CELERY_BROKER_URL = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    response = client.get("/readyz?only=database,broker")
    assert response.status_code == 503
    detail = response.json()["checks"]["broker"]["detail"]
    assert f"127.0.0.1:{port}" in detail
    assert "hunter2" not in response.content.decode()


@pytest.mark.django_db
def test_metrics_only_for_allowed_networks_and_with_the_token_when_set(client, settings):
    """GIVEN the defaults WHEN /metrics is asked from loopback THEN Prometheus text with the grants by state;
    from elsewhere THEN 403; GIVEN JITAD_METRICS_TOKEN THEN 401 without it or with a wrong one, 200 with it."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    names = {m.name for m in text_string_to_metric_families(response.content.decode())}
    assert {"jitad_grants", "jitad_revocation_lateness_seconds", "jitad_dc_call_seconds", "jitad_ready"} <= names
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.10").status_code == 403

    settings.JITAD_METRICS_TOKEN = "t0ken-" + "x" * 20
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.JITAD_METRICS_TOKEN}").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.10",
                      HTTP_AUTHORIZATION=f"Bearer {settings.JITAD_METRICS_TOKEN}").status_code == 403


@pytest.mark.django_db
def test_a_proxy_cannot_make_every_caller_look_local(client, settings):
    """GIVEN a trusted proxy on loopback WHEN it forwards a caller from another network THEN that caller is
    judged by its own address: no metrics, no readiness detail."""
    settings.JITAD_TRUSTED_PROXIES = ["127.0.0.1"]
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 403
    body = json.loads(client.get("/readyz?only=database", HTTP_X_FORWARDED_FOR="198.51.100.7").content)
    assert "version" not in body and "detail" not in body["checks"]["database"]


def test_loopback_read_from_the_forwarded_header_is_not_local(client, settings):
    """GIVEN a trusted proxy range that appends to X-Forwarded-For WHEN a caller behind it sends
    "127.0.0.1" first THEN it is not taken as a local caller; a caller on the machine itself still is."""
    settings.JITAD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="127.0.0.1, 10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def _served_families(text: str) -> set[str]:
    return {m.name for m in text_string_to_metric_families(text)}


def _family(name: str) -> str:
    for suffix in ("_total", "_bucket", "_count", "_sum", "_info"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@pytest.mark.django_db
def test_every_metric_the_ops_docs_tell_to_alert_on_is_served(client, settings):
    """GIVEN the "alerted failure -> alert on" table of ops/README.md and both metric tables WHEN /metrics is
    scraped (with a SIEM destination configured, so its series exist) THEN every jitad_* metric they name is
    served: the docs cannot promise a series that does not exist."""
    from tests.test_ops_docs import README

    settings.JITAD_SIEM_DESTINATIONS = {"central": {"transport": "https", "format": "json",
                                                    "url": "https://127.0.0.1:9/services/collector/event"}}
    section = README.split("## Health and metrics", 1)[1].split("\n## ", 1)[0]
    assert "<!-- alert-metrics:" in section
    named = {_family(n) for n in re.findall(r"\bjitad_[a-z_]+[a-z]", section)} - {"jitad_metrics"}
    assert len(named) > 15, named
    served = {_family(n) for n in _served_families(client.get("/metrics").content.decode())}
    assert not named - served, f"ops/README.md names metrics /metrics does not serve: {sorted(named - served)}"


@pytest.mark.django_db
def test_an_alert_is_counted_and_its_condition_shows_while_open(client, django_capture_on_commit_callbacks):
    """GIVEN a condition raised WHEN /metrics is scraped THEN jitad_alerts_total counted its alert and
    jitad_alert_conditions_open shows it; resolved THEN it is no longer open."""
    from jitad.notifications.services import condition_raise, condition_resolve

    def value(text, name, **labels):
        return sum(s.value for m in text_string_to_metric_families(text) for s in m.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    before = client.get("/metrics").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        condition_raise(key="test.metrics", event="test.metrics_condition", subject="s", body="b")
    text = client.get("/metrics").content.decode()
    assert value(text, "jitad_alerts_total", event="test.metrics_condition") == \
        value(before, "jitad_alerts_total", event="test.metrics_condition") + 1
    assert value(text, "jitad_alert_conditions_open", event="test.metrics_condition") == 1
    with django_capture_on_commit_callbacks(execute=True):
        condition_resolve(key="test.metrics", event="test.metrics_condition.resolved", subject="s", body="b")
    assert value(client.get("/metrics").content.decode(), "jitad_alert_conditions_open",
                 event="test.metrics_condition") == 0
