"""Log lines: JSON when asked (with the request's, task's and grant's ids), and no INFO noise from idle periodic work."""
import base64
import json
import logging
import sys
import time

from django.utils import timezone

from jitad import logs
from tests.support.waiting import wait_for


def _record(msg, args, level=logging.INFO, name="celery.app.trace"):
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_idle_results_are_nothing_and_counts_are_something():
    for idle in ("None", "0", "{}", "[]", "{'revoke': 0, 'revoke_more': 0, 'apply': 0, 'held_removal': 0}",
                 "{'checked': 0.0}", "False"):
        assert logs.did_nothing(idle), idle
    for busy in ("1", "{'revoke': 3, 'apply': 0}", "{'revoke': 0, 'apply': 12}", "['CN=JIT-SRV01']", "0.5",
                 "{'groups': ('CN=x',)}"):
        assert not logs.did_nothing(busy), busy


def test_periodic_tasks_are_quiet_at_info_unless_they_did_something(monkeypatch):
    """GIVEN the sweep among the periodic tasks WHEN Celery logs its received and succeeded lines at INFO THEN
    both are left out when it did nothing, the succeeded line is kept when it counted something, and another
    task's lines are kept; with the root logger at DEBUG everything is kept."""
    from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

    monkeypatch.setattr(logs, "periodic_tasks", {"jitad.elevation.sweep"})
    quiet = logs.QuietPeriodicFilter()
    sweep = {"name": "jitad.elevation.sweep", "id": "x", "runtime": 0.01}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    assert not quiet.filter(_record(LOG_RECEIVED, (sweep,)))
    assert not quiet.filter(_record(LOG_SUCCESS, ({**sweep, "return_value": "{'revoke': 0}"},)))
    assert quiet.filter(_record(LOG_SUCCESS, ({**sweep, "return_value": "{'revoke': 2}"},)))
    other = {"name": "jitad.elevation.grant_apply", "id": "y", "runtime": 0.1, "return_value": "None"}
    assert quiet.filter(_record(LOG_RECEIVED, (other,))) and quiet.filter(_record(LOG_SUCCESS, (other,)))
    assert quiet.filter(_record("sweep: %s", ("anything",)))
    root.setLevel(logging.DEBUG)
    try:
        assert quiet.filter(_record(LOG_RECEIVED, (sweep,)))
    finally:
        root.setLevel(level)


def test_json_lines_carry_the_context_and_the_traceback():
    """GIVEN a request id and a task working on two grants in the context WHEN a line with an exception is
    formatted THEN it is one JSON object with them and the traceback; outside any context THEN none of the ids."""
    formatter, context = logs.JsonFormatter(), logs.ContextFilter()
    token = logs.request_id.set("req-1")
    logs.task_started(name="jitad.elevation.grants_revoke", task_id="t-1", kwargs={}, args=([7, 8], "token"))
    try:
        try:
            raise ValueError("boom \"quoted\"\nsecond line")
        except ValueError:
            record = logging.LogRecord("jitad.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
        context.filter(record)
        line = formatter.format(record)
    finally:
        logs.request_id.reset(token)
        logs.task_ended()
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "failed here" and out["level"] == "ERROR" and out["logger"] == "jitad.x"
    assert (out["request_id"], out["task"], out["task_id"], out["grant_ids"]) == \
        ("req-1", "jitad.elevation.grants_revoke", "t-1", [7, 8])
    assert "ValueError: boom" in out["exception"]
    assert out["time"].endswith("Z")

    plain = logging.LogRecord("jitad.x", logging.INFO, __file__, 1, "nothing", (), None)
    context.filter(plain)
    assert set(json.loads(formatter.format(plain))) == {"time", "level", "logger", "message", "process"}


def test_a_request_id_from_the_proxy_is_kept_only_when_it_is_a_plain_token():
    assert logs.request_id_from("abc-123.x:y_z") == "abc-123.x:y_z"
    for bad in ("", None, "has space", "new\nline", "x" * 65, '{"json":1}'):
        generated = logs.request_id_from(bad)
        assert generated != bad and len(generated) == 32


def test_an_idle_worker_says_nothing_about_its_sweeps(live):
    """GIVEN the session's worker, whose scheduler sends the sweep every 0.5 s, and nothing to do WHEN sweeps run
    for a few seconds THEN its log has no line about them (Celery's received/succeeded lines for the sweep were
    one INFO line each, several a second)."""
    from jitad.engine.selectors import pulse_at

    worker = live
    start = worker.log_path.stat().st_size
    since = timezone.now()
    wait_for(lambda: (pulse_at(name="sweep") or since) > since, timeout=30, message="a sweep ran")
    first = pulse_at(name="sweep")
    time.sleep(3)
    assert pulse_at(name="sweep") > first, "the sweeps kept running"
    with open(worker.log_path, "rb") as f:
        f.seek(start)
        added = f.read().decode(errors="replace")
    assert "jitad.elevation.sweep[" not in added, added[-3000:]


def test_logon_tokens_never_reach_the_log_even_at_debug(settings):
    """GIVEN jitad's logging configuration with the root logger at DEBUG WHEN pyspnego makes a real NTLM message (it
    logs each one at DEBUG), pywinrm's requests_kerberos logs its Authorization header, and any other library logs a
    Negotiate or Kerberos header THEN no token is in the output, and ordinary lines (naming Kerberos or NTLM) are."""
    import copy
    import io
    import logging.config

    import spnego

    ticket = "YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEFoQMCAQ6iBwMFACAAAACjggSF"
    reply = "oYGXMIGUoAMKAQChCwYJKoZIgvcSAQICooGBBH8wfaADAgEFoQMCAQ+ibzBtoAMCARKiZgRk"
    config = copy.deepcopy(settings.LOGGING)
    config["root"]["level"] = "DEBUG"
    root = logging.getLogger()
    names = ["spnego", "spnego._ntlm", "winrm.vendor.requests_kerberos.kerberos_", "some.http.library", "jitad.x",
             *config["loggers"]]
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in names}
    stream = io.StringIO()
    try:
        logging.config.dictConfig(config)
        next(h for h in root.handlers if h.get_name() == "console").setStream(stream)
        ntlm = spnego.client("svc-jitad", "pw", hostname="srv01.jitad.test", protocol="ntlm").step()
        logging.getLogger("winrm.vendor.requests_kerberos.kerberos_").debug(
            "authenticate_user(): Authorization header: {0}".format(f"Negotiate {ticket}"))
        library = logging.getLogger("some.http.library")
        library.debug("send: headers %s", {"Authorization": f"Negotiate {ticket}", "Content-Length": "0"})
        library.debug("reply: WWW-Authenticate: Kerberos %s", reply)
        library.debug("CredSSP TSRequest output: %s", base64.b64encode(ntlm).decode())
        logging.getLogger("jitad.x").debug("Kerberos settings are missing; NTLM transport is deprecated")
    finally:
        handlers, level, levels = saved
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
    out = stream.getvalue()
    assert "Kerberos settings are missing; NTLM transport is deprecated" in out
    assert "send: headers {'Authorization': 'Negotiate [redacted]'" in out and "Kerberos [redacted]" in out
    for token in (ticket[:20], reply[:20], base64.b64encode(ntlm).decode()[:20], "TlRMTVNTUA"):
        assert token not in out, out
