"""The session store: Django's database sessions, keyed in the table by a digest of the key.

The cookie carries the session key; the ``django_session`` table holds only the first 40
hex characters (160 bits, the column's width) of its SHA-256. Someone who reads the table
(a dump, a backup, a replica) cannot turn a row into a cookie, so cannot ride a logged-in,
MFA-verified session. The key has about 165 bits of randomness, so the digest needs no salt.

Rows written before this store (raw keys) match no cookie any more: those sessions end,
and expire out of the table with ``manage.py clearsessions``.
"""
import hashlib
import logging

from django.contrib.sessions.backends import db
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

DIGEST_LENGTH = 40  # django_session.session_key is varchar(40)


def session_key_digest(session_key: str) -> str:
    """What the table holds for ``session_key``."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:DIGEST_LENGTH]


def _suspicious(e: Exception) -> None:
    if isinstance(e, SuspiciousOperation):
        logging.getLogger(f"django.security.{e.__class__.__name__}").warning(str(e))


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        try:
            return self.model.objects.get(session_key=session_key_digest(self.session_key), expire_date__gt=timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation) as e:
            _suspicious(e)
            self._session_key = None

    async def _aget_session_from_db(self):
        try:
            return await self.model.objects.aget(session_key=session_key_digest(self.session_key), expire_date__gt=timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation) as e:
            _suspicious(e)
            self._session_key = None

    def exists(self, session_key):
        return self.model.objects.filter(session_key=session_key_digest(session_key)).exists()

    async def aexists(self, session_key):
        return await self.model.objects.filter(session_key=session_key_digest(session_key)).aexists()

    def create_model_instance(self, data):
        obj = super().create_model_instance(data)
        obj.session_key = session_key_digest(obj.session_key)
        return obj

    async def acreate_model_instance(self, data):
        obj = await super().acreate_model_instance(data)
        obj.session_key = session_key_digest(obj.session_key)
        return obj

    def delete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is None:
            return
        self.model.objects.filter(session_key=session_key_digest(session_key)).delete()

    async def adelete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is None:
            return
        await self.model.objects.filter(session_key=session_key_digest(session_key)).adelete()
