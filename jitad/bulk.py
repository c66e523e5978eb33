"""Insert many rows at once: PostgreSQL's COPY where it is the database, ``bulk_create`` elsewhere.

A mass expiry writes tens of thousands of rows of the same few kinds (audit events, notices,
their deliveries). ``bulk_create`` sends them as one INSERT of arrays, and the driver turns
each array into text in Python, escaping every string with a regular expression: about a
fifth of a removal task's CPU in a 10,000-grant wave. COPY sends the rows as they are, each
value written by the driver's compiled dumpers, and PostgreSQL parses no statement per row.

The rows get their primary keys first (from the table's own sequence, in one statement), so
the objects come back saved and with ids, as from ``bulk_create``; no model signal is sent by
either. Fields with a database default only (``db_default``) or generated in the database are
not supported here: use ``bulk_create``.
"""
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime

from django.db import connections, models, router

log = logging.getLogger(__name__)

COPY_MIN = 20  # fewer rows than this: one INSERT costs less than the sequence's round trip and a COPY

# Django's own fields (exactly these classes: a subclass may prepare its values its own way, say encrypt them)
# whose values of this Python type Django would send unchanged: these go to COPY as they are.
_PLAIN = {
    **dict.fromkeys([models.CharField, models.TextField, models.SlugField, models.EmailField, models.URLField], str),
    **dict.fromkeys([models.IntegerField, models.BigIntegerField, models.SmallIntegerField, models.PositiveIntegerField,
                     models.PositiveBigIntegerField, models.PositiveSmallIntegerField, models.ForeignKey,
                     models.OneToOneField], int),
    models.BooleanField: bool,
    models.DateTimeField: datetime,  # aware only
    models.UUIDField: uuid.UUID,
}


def _stamped(field) -> bool:
    """A field whose value is set on save (``auto_now``, ``auto_now_add``): always prepared."""
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


def insert_many(model, objs: Sequence, *, using: str | None = None) -> list:
    """Insert ``objs`` (unsaved instances of ``model``) in the caller's transaction; returns them with ids."""
    objs = list(objs)
    db = using or router.db_for_write(model)
    connection = connections[db]
    if connection.vendor != "postgresql" or len(objs) < COPY_MIN or not _may_take_ids(connection, model):
        return model.objects.using(db).bulk_create(objs)
    for obj in objs:  # as bulk_create: a related object saved after it was assigned gives its id now
        obj._prepare_related_fields_for_save(operation_name="insert_many")
    meta = model._meta
    pk = meta.pk
    fields = [f for f in meta.concrete_fields if f is not pk]
    quote = connection.ops.quote_name
    plain = [(f.attname, _PLAIN.get(type(f)) if not _stamped(f) else None) for f in fields]
    # Errors come out as Django's (IntegrityError, OperationalError...), and a connection broken mid-COPY
    # is checked before it is used again, as after any statement Django runs itself.
    with connection.wrap_database_errors, connection.cursor() as cursor:
        cursor.execute(_IDS, [quote(meta.db_table), pk.column, len(objs)])
        ids = [row[0] for row in cursor.fetchall()]
        columns = ", ".join(quote(f.column) for f in [pk, *fields])
        statement = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
        started = time.monotonic()
        with cursor.cursor.copy(statement) as copy:
            for obj, pk_value in zip(objs, ids):
                values = [pk_value]
                for f, (attname, kind) in zip(fields, plain):
                    value = getattr(obj, attname)
                    # A value the driver writes as it is (a str for a text column, an aware datetime, a null of a
                    # field that prepares nothing) goes as it is; anything else as Django would prepare it for
                    # an INSERT.
                    if kind is not None and (value is None or type(value) is kind and (
                            kind is not datetime or value.tzinfo is not None)):
                        values.append(value)
                    else:
                        values.append(f.get_db_prep_save(f.pre_save(obj, True), connection))
                copy.write_row(values)
        if connection.queries_logged:  # where Django records statements (DEBUG, a test counting them), this one too
            connection.queries_log.append({"sql": f"{statement} -- {len(objs)} rows",
                                           "time": f"{time.monotonic() - started:.3f}"})
    for obj, pk_value in zip(objs, ids):
        setattr(obj, pk.attname, pk_value)
        obj._state.adding = False
        obj._state.db = db
    return objs


_IDS = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"
_may: dict[tuple[str, str], bool] = {}  # (database alias, table) -> may this process's role take ids itself


def _may_take_ids(connection, model) -> bool:
    """Whether the role jitad runs as may take ids from the table's sequence itself (asked once per process).

    An INSERT fills an identity column without asking for rights on its sequence; ``nextval()`` needs
    USAGE or UPDATE there. A site whose runtime role has rights on the tables only (another role
    runs ``migrate``) keeps ``bulk_create`` rather than failing every audit write of a mass expiry.
    """
    key = (connection.alias, model._meta.db_table)
    if key not in _may:
        with connection.cursor() as cursor:
            cursor.execute("SELECT has_sequence_privilege(pg_get_serial_sequence(%s, %s), 'USAGE') "
                           "OR has_sequence_privilege(pg_get_serial_sequence(%s, %s), 'UPDATE')",
                           [connection.ops.quote_name(model._meta.db_table), model._meta.pk.column] * 2)
            _may[key] = bool(cursor.fetchone()[0])
        if not _may[key]:
            log.warning("%s: no right to take ids from its sequence; many rows go by INSERT, not COPY (ops/README.md)",
                        model._meta.db_table)
    return _may[key]
