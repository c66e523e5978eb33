"""The embedded broker never hands a reader a half-written message, never dies on a bad one, and never holds up a stop."""
import os
import socket
import threading

import pytest
from kombu import Connection, Queue

from jitad import broker  # registers jitadfs://


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    """One control folder (exchange tables) for the module, outside the working tree.

    kombu's default is ./control, which left exchange files in the repository. It is shared
    by the tests because kombu remembers declared bindings per process and does not write
    the table again for the next connection.
    """
    return tmp_path_factory.mktemp("control")


def _conn(tmp_path, control):
    folder = tmp_path / "q"
    folder.mkdir(exist_ok=True)
    opts = {"data_folder_in": str(folder), "data_folder_out": str(folder), "processed_folder": str(tmp_path),
            "control_folder": str(control)}
    return Connection("jitadfs://", transport_options=opts), folder


def test_concurrent_writer_and_reader_lose_nothing(tmp_path, control):
    """GIVEN a writer putting 500 messages WHEN a reader drains the queue at the same time
    THEN every message arrives whole, exactly once."""
    conn, _ = _conn(tmp_path, control)
    q = conn.SimpleQueue("t")
    got = []

    def write():
        with Connection(conn.as_uri(), transport_options=conn.transport_options) as c:
            wq = c.SimpleQueue("t")
            for i in range(500):
                wq.put({"i": i, "pad": "x" * 4000})

    writer = threading.Thread(target=write)
    writer.start()
    while len(got) < 500:
        try:
            m = q.get(timeout=10)
        except q.Empty:
            break
        got.append(m.payload["i"])
        m.ack()
    writer.join()
    q.close()
    conn.release()
    assert sorted(got) == list(range(500))


def test_unreadable_message_is_skipped_not_fatal(tmp_path, control):
    conn, folder = _conn(tmp_path, control)
    q = conn.SimpleQueue("t")
    (folder / "0_bad.t.msg").write_bytes(b"")  # what kombu's own writer could expose mid-write
    q.put({"ok": 1})
    m = q.get(timeout=5)
    m.ack()
    q.close()
    conn.release()
    assert m.payload == {"ok": 1}
    assert not [f for f in os.listdir(folder) if f.endswith(".msg")]


class _Polled(Exception):
    """The wait went on to its next poll."""


def _no_second_poll(seconds):
    raise _Polled


def test_a_wait_for_messages_ends_at_once_when_the_worker_is_asked_to_stop(tmp_path, control, monkeypatch):
    """GIVEN a consumer waiting on an empty queue (Celery's waits 2 s at a time before it looks
    at a SIGTERM's request) WHEN nobody asked the worker to stop THEN the wait goes on to its
    next poll WHEN the worker has been asked to stop THEN the wait ends without another poll,
    as the timeout its caller expects, so a warm shutdown starts at once."""
    from celery.worker import state
    from kombu.transport.virtual import base

    monkeypatch.setattr(broker, "sleep", _no_second_poll, raising=False)
    monkeypatch.setattr(base, "sleep", _no_second_poll)
    conn, _ = _conn(tmp_path, control)
    with conn.Consumer(Queue("t"), callbacks=[lambda body, message: message.ack()]):
        with pytest.raises(_Polled):
            conn.drain_events(timeout=60)
        monkeypatch.setattr(state, "should_stop", 0)  # what the warm-shutdown handler sets (EX_OK)
        with pytest.raises(socket.timeout):
            conn.drain_events(timeout=60)
    conn.release()


def test_acknowledging_on_a_channel_whose_redis_connection_is_gone_does_not_stop_the_worker(tmp_path):
    """kombu's race after Redis went away and came back: a task acks on its old channel, whose
    connection is gone; the AttributeError would stop the worker ("Unrecoverable error"). The
    worker logs it and lives on; the message is delivered again later and finds its work done.
    Against a Redis of the test's own, so it runs whatever the session's broker is."""
    from kombu import Connection

    from jitad.broker import RedisTransport
    from tests.support.processes import RedisServer

    redis_server = RedisServer(tmp_path / "redis", tmp_path / "redis.log").start()
    try:
        with Connection(redis_server.url, transport=RedisTransport) as conn:
            channel = conn.channel()
            channel.queue_declare("jitad-test-ack")
            channel.basic_publish(channel.prepare_message(b"x"), exchange="", routing_key="jitad-test-ack")
            message = channel.basic_get("jitad-test-ack", no_ack=False)
            assert message is not None
            tag = message.delivery_tag
            channel.connection, channel._pool = None, None  # the connection the message came on is gone
            channel.qos.ack(tag)  # no AttributeError
            assert tag in channel.qos._dirty  # acknowledged here; Redis delivers it again after the visibility timeout
    finally:
        redis_server.kill()
