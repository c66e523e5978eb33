"""A worker keeps its database connection across tasks, and a dead one never fails a task.

A real Celery worker (one pool process, no beat) on the test database; tasks are sent by
name and their outcome read from the worker's log. PostgreSQL only: the connection a pool
process keeps is a server backend that can be seen in pg_stat_activity and killed with
pg_terminate_backend, as a database restart or a dropped connection would.
"""
import os
import re
import time

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import REPO
from tests.settings import ENGINE_ENV
from tests.support.sweeper import database_url
from tests.support.waiting import wait_for
from tests.support.worker import CeleryWorker, background_workers_stopped

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (JITAD_DATABASE_URL)")

TASK = "jitad.elevation.expire_pending"  # reads the database, needs no DC


@pytest.fixture
def worker(transactional_db, tmp_path):
    from jitad.celery import app

    try:
        app.control.purge()
    except Exception:  # noqa: BLE001 - an empty broker is fine
        pass
    env = dict(os.environ)
    env.update(ENGINE_ENV)
    env.update(JITAD_VAR_DIR=str(settings.VAR_DIR), JITAD_DATABASE_URL=database_url(), PYTHONPATH=str(REPO))
    # The only consumer of the queue: a worker an earlier test left running (the session's) would
    # take the task, and this worker would never log it.
    with background_workers_stopped():
        # TASK is periodic and finds nothing to do: at INFO its "succeeded" line, how this test sees it end, is
        # left out (jitad.logs).
        w = CeleryWorker(env, tmp_path, beat=False, concurrency=1, queues=("celery",), loglevel="DEBUG")
        w.start()
        yield w
        w.stop()


def run_task(worker: CeleryWorker) -> None:
    """Send TASK and wait for the worker to log its end; fail if it raised."""
    from jitad.celery import app

    task_id = app.send_task(TASK).id

    def ended():
        text = worker.log_path.read_text(errors="replace")
        return re.search(rf"{task_id}\] (succeeded|raised|retry)[^\n]*", text)

    end = wait_for(ended, timeout=30, message=f"the worker ending task {task_id}")
    assert end.group(1) == "succeeded", f"{end.group(0)}\n{worker.log_tail()}"


def worker_backends() -> dict[int, float]:
    """The other backends on the test database that last ran the task's query: {pid: query start}."""
    with connection.cursor() as c:
        c.execute("SELECT pid, extract(epoch FROM query_start) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                  "AND query LIKE '%%elevation_accessrequest%%'")
        return dict(c.fetchall())


def test_a_pool_process_reuses_its_connection_and_survives_it_being_killed(worker):
    """GIVEN a worker that ran a task WHEN it runs the next one THEN the same PostgreSQL backend
    served both (no new connection per task); WHEN that backend is killed between two tasks
    (pg_terminate_backend, as a restart or a dropped connection would) THEN the next task still
    succeeds, on a new connection, and nothing is logged as failed."""
    run_task(worker)
    first = worker_backends()
    assert len(first) == 1, f"one pool process, one kept connection: {first}"
    (pid, started), = first.items()

    time.sleep(0.05)
    run_task(worker)
    again = worker_backends()
    assert pid in again and again[pid] > started, f"the second task ran on a new connection: {first} then {again}"

    with connection.cursor() as c:
        c.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_for(lambda: pid not in worker_backends(), timeout=10, message="the killed backend gone")

    run_task(worker)
    after = worker_backends()
    assert after and pid not in after, f"the task after the kill did not open a new connection: {after}"
    run_task(worker)
    log = worker.log_path.read_text(errors="replace")
    assert "OperationalError" not in log and "InterfaceError" not in log, worker.log_tail()
