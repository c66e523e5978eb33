"""The embedded single-machine broker: kombu's filesystem transport, made safe for concurrency.

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

from kombu.transport import TRANSPORT_ALIASES, filesystem
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


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault("jitadfs", "jitad.broker:Transport")
