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
import uuid
from time import monotonic

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


class RedisChannel(redis.Channel):
    QoS = RedisQoS


class RedisTransport(redis.Transport):
    Channel = RedisChannel
