"""Which AD groups a person is in: the groups mirrored into Django groups at login and by
the directory sync (jitad.accounts.directory_sync).

Every app that names people by AD group (elevation policies and targets, break-glass
accounts) asks here, in Python or inside a query. Names compare case-insensitively, as
AD does: both sides are lowered. In a query both sides are lowered by the database's
``lower()``; SQLite's folds ASCII only, so a non-ASCII group name must be spelt with the
same case in a policy as in AD to match there; PostgreSQL folds it like Python.
"""
from django.contrib.auth.models import Group
from django.db import NotSupportedError
from django.db.models import BooleanField, F, Func, QuerySet, Subquery
from django.db.models.functions import Lower


class JSONListMatches(Func):
    """True when the JSON list in ``field`` holds one of ``names`` (case-insensitive).

    ``names`` is a list of strings, or a one-column queryset of names already lowered.
    """

    output_field = BooleanField()

    def __init__(self, field: str, names):
        if isinstance(names, QuerySet):
            self.literal_names = None
            super().__init__(F(field), Subquery(names))
        else:
            self.literal_names = [str(n) for n in names]
            super().__init__(F(field))

    def _names_sql(self, compiler):
        if self.literal_names is None:
            return compiler.compile(self.source_expressions[1])
        return "(" + ", ".join(["lower(%s)"] * len(self.literal_names)) + ")", list(self.literal_names)

    def _empty(self):
        return self.literal_names is not None and not self.literal_names

    def as_sqlite(self, compiler, connection, **extra):
        if self._empty():
            return "0", []
        column, params = compiler.compile(self.source_expressions[0])
        names, name_params = self._names_sql(compiler)
        sql = (
            f"EXISTS (SELECT 1 FROM json_each(CASE json_type({column}) WHEN 'array' THEN {column} ELSE '[]' END) AS m "
            f"WHERE lower(m.value) IN {names})"
        )
        return sql, (*params, *params, *name_params)

    def as_postgresql(self, compiler, connection, **extra):
        # The list lowered as a whole (its text, read back as JSON) and asked whether it holds any of
        # the names (``?|``, which for an array means a string element equal to one): the same answer
        # as lowering element by element, one expression per row instead of a set-returning function,
        # and the expression a GIN index on ``(lower(<column>::text)::jsonb)`` answers (elevation's
        # migration 0019 builds one for targets' and policies' approver groups, asked about by every
        # portal page and API list).
        if self._empty():
            return "false", []
        column, params = compiler.compile(self.source_expressions[0])
        if self.literal_names is None:
            names, name_params = compiler.compile(self.source_expressions[1])
            names = f"ARRAY{names}"
        else:
            names, name_params = "ARRAY[" + ", ".join(["lower(%s)"] * len(self.literal_names)) + "]::text[]", \
                list(self.literal_names)
        sql = f"(jsonb_typeof({column}) = 'array' AND (lower({column}::text)::jsonb) ?| {names})"
        return sql, (*params, *params, *name_params)

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"jitad's policy queries support SQLite and PostgreSQL, not {connection.vendor}")


def group_names_query(user) -> QuerySet:
    """``user``'s group names, lowered, as a one-column queryset (a subquery for JSONListMatches)."""
    return Group.objects.filter(user=user).annotate(key=Lower("name")).values("key")


def group_names(user) -> set[str]:
    """``user``'s group names, lowered, as a set (to compare with a row already read)."""
    return {name.lower() for name in user.groups.values_list("name", flat=True)}
