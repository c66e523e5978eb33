"""The brokers jitad speaks: the embedded filesystem one made safe for concurrency, and Redis made outage-proof.

kombu's own ``_put`` creates the message file and then writes it, while ``_get`` moves and
reads files without taking the writer's lock: a reader can take a file that is still empty
and the worker dies on the JSON error (seen under `make bench`). Here a message is written
under a temporary name the reader ignores and renamed into place, which is atomic on one
filesystem; a file that still cannot be decoded is logged and skipped, never fatal.
The database stays the source of truth: a skipped wake-up is found again by the sweeper.
"""
import logging
import os
import socket
import uuid
from time import monotonic, sleep

from kombu.transport import TRANSPORT_ALIASES, filesystem, redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

log = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"  # its suffix is not "<queue>.msg", so readers skip it
        with open(partial, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(partial, final)

    def _get(self, queue):
        try:
            return super()._get(queue)
        except ValueError:
            log.error("dropped an unreadable message from the %s queue", queue)
            raise filesystem.Empty() from None
        except OSError as e:
            # The queue folder is gone or unusable (disk full, unmounted, replaced): a worker
            # that stopped here would never come back on its own. Wait and look again.
            now = monotonic()
            if now - self._last_folder_error > 60:
                log.error("the broker's queue folder cannot be read (%s); waiting for it to come back", e)
                self._last_folder_error = now
            raise filesystem.Empty() from None

    _last_folder_error = float("-inf")


class Transport(filesystem.Transport):
    Channel = Channel

    def drain_events(self, connection, timeout=None):
        """kombu's polling wait for a message, except that it gives up as soon as the worker is asked to stop.

        Celery's consumer waits here up to 2 s at a time and only looks at a SIGTERM's request
        between waits, so every warm shutdown (a supervisor's restart, a deploy) started up
        to 2 s late, doing nothing. Now the wait ends at the next poll, as if it had timed
        out, which the consumer expects. Without a timeout the caller is not prepared for
        that, so such a wait runs as before.
        """
        time_start = monotonic()
        get = self.cycle.get
        polling_interval = self.polling_interval
        if timeout and polling_interval and polling_interval > timeout:
            polling_interval = timeout
        while True:
            try:
                get(self._deliver, timeout=timeout)
            except filesystem.Empty:
                if timeout is not None and (monotonic() - time_start >= timeout or _worker_stopping()):
                    raise socket.timeout() from None
                if polling_interval is not None:
                    sleep(polling_interval)
            else:
                return


def _worker_stopping() -> bool:
    """Whether this process is a Celery worker asked to shut down (warm or cold)."""
    from celery.worker import state

    return state.should_stop is not None or state.should_terminate is not None


TRANSPORT_ALIASES.setdefault("jitadfs", "jitad.broker:Transport")


# -- Redis ---------------------------------------------------------------------------------
class RedisQoS(redis.QoS):
    def restore_unacked(self, client=None):
        """Put unacknowledged messages back, unless the connection is already gone.

        When Redis goes away with a message unacknowledged, kombu's channel close calls
        this after the connection was released, fails with an AttributeError, and Celery
        stops the worker ("Unrecoverable error"). A broker outage must not kill the
        engine: the message stays in Redis's unacked index (restored after the visibility
        timeout) and, as always, the sweep finds the work in the database.
        """
        try:
            return super().restore_unacked(client)
        except AttributeError as e:
            log.warning("could not put unacknowledged messages back (broker connection gone: %s); "
                        "the sweep takes their work up again", e)
            self._delivered.clear()
            return None


    def ack(self, delivery_tag):
        """Acknowledge, unless the connection the message came on is already gone.

        The same kombu race as above, on the acknowledgement: a task that ends just after
        Redis went away and came back acks on the old channel, whose connection is gone, and
        the AttributeError stops the worker. The message stays in Redis's unacked index, is
        delivered again after the visibility timeout and finds its claim taken: it does
        nothing. The worker lives on.
        """
        try:
            super().ack(delivery_tag)
        except AttributeError as e:
            log.warning("could not acknowledge a message (broker connection gone: %s); delivered again later, "
                        "it finds its work done", e)
            self._quick_ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except AttributeError as e:
            log.warning("could not reject a message (broker connection gone: %s); delivered again later", e)
            self._quick_ack(delivery_tag)


class RedisChannel(redis.Channel):
    QoS = RedisQoS


class RedisTransport(redis.Transport):
    Channel = RedisChannel


# -- is it there? ---------------------------------------------------------------------------
def probe(*, deadline: float) -> str:
    """Why the broker cannot take a message now, or "" when it can; never waits much longer than ``deadline`` s.

    The watchdog asks every run: sends to a broker that is down fail quietly by design
    (``jitad.engine.queue``), so without this nobody would hear that no sweep, revocation or
    alert reaches a worker. The answer names the broker by host and port only, never its password.
    """
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if url.startswith(("jitadfs://", "filesystem://")):
        return _probe_folder(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"])
    if url.startswith(("redis://", "rediss://")):
        return _probe_redis(url, deadline)
    return _probe_kombu(deadline)


def _probe_folder(folder: str) -> str:
    """The embedded broker: its queue folder must take a file (root ignores permissions, so write one)."""
    if not os.path.isdir(folder):
        return f"the embedded broker's queue folder {folder} is missing or not a folder"
    probe_file = os.path.join(folder, f".probe-{os.getpid()}-{uuid.uuid4().hex}.part")  # readers skip *.part
    try:
        with open(probe_file, "wb") as f:
            f.write(b"probe")
        os.remove(probe_file)
    except OSError as e:
        return f"the embedded broker's queue folder {folder} takes no message: {e.strerror or e}"
    return ""


def _probe_redis(url: str, deadline: float) -> str:
    import redis as redis_py

    client = redis_py.Redis.from_url(url, socket_connect_timeout=deadline, socket_timeout=deadline,
                                     retry_on_timeout=False)
    where = client.connection_pool.connection_kwargs
    name = f"Redis at {where.get('host', where.get('path', '?'))}:{where.get('port', '')}".rstrip(":")
    try:
        # A write, not a PING: a read-only replica after a failover, or a Redis out of memory,
        # answers PING and still refuses every message.
        client.set("jitad:broker-probe", "1", ex=60)
    except redis_py.RedisError as e:
        return f"{name} does not answer: {type(e).__name__}: {e}"
    finally:
        client.close()
    return ""


def _probe_kombu(deadline: float) -> str:
    """Any other broker: a connection within the deadline."""
    from celery import current_app

    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=deadline)
    except Exception as e:  # noqa: BLE001 - any failure to connect is the answer
        return f"the broker does not answer: {type(e).__name__}"
    return ""


# -- how much waits in it? ------------------------------------------------------------------
def queue_depths(queues: list[str], *, deadline: float) -> dict[str, int] | None:
    """{queue: messages waiting in the broker}, or None when the broker does not answer within ``deadline`` s.

    Messages a worker has taken and not yet acknowledged are not counted (Redis keeps them
    apart until the acknowledgement), nor are ETA messages a worker holds in memory.
    """
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if url.startswith(("jitadfs://", "filesystem://")):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"]
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        return {q: sum(1 for n in names if n.endswith(f".{q}.msg")) for q in queues}
    if url.startswith(("redis://", "rediss://")):
        import redis as redis_py

        client = redis_py.Redis.from_url(url, socket_connect_timeout=deadline, socket_timeout=deadline,
                                         retry_on_timeout=False)
        try:
            with client.pipeline(transaction=False) as pipe:
                for q in queues:
                    pipe.llen(q)  # kombu's Redis transport keeps a queue's messages in a list named after it
                return dict(zip(queues, pipe.execute()))
        except redis_py.RedisError:
            return None
        finally:
            client.close()
    return None
