"""The shape every report takes, whatever computes it and however it is shown.

Selectors build a :class:`Report`; the Reports pages render it (figures, SVG charts, the
table behind each chart), the exports write it as CSV, JSON or Markdown, ``manage.py
jitad_report`` prints it, and the JIT PAM document quotes it. Keeping one shape is what
makes every figure traceable: each table row may name the records behind it.
"""
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Column:
    """One column of a table: a machine key (JSON/CSV header) and a label for people."""

    key: str
    label: str
    unit: str = ""  # "%", "s", "h", "" (a count or a name)


@dataclass(frozen=True)
class Records:
    """The records behind a figure or a row: an admin changelist of ``model`` filtered by ``query``.

    ``model`` is "app_label.model" (e.g. "elevation.grant"); ``query`` holds admin changelist
    lookups (e.g. {"id__in": "4,9,12"} or {"state": "revoke_failed"}). The view turns it into a
    link; exports write it as a string.
    """

    model: str
    query: dict
    count: int | None = None


@dataclass(frozen=True)
class Chart:
    """How to draw a table: ``line`` (a trend: x is a date column), ``bar`` (x is a category),
    ``histogram`` (x is a bucket label). One series per key in ``y``."""

    kind: str
    x: str
    y: tuple[str, ...]


@dataclass
class Table:
    """Rows behind a chart or a list (a row is a dict by column key; ``records`` per row index)."""

    key: str
    title: str
    columns: list[Column]
    rows: list[dict]
    chart: Chart | None = None
    records: dict[int, Records] = field(default_factory=dict)


@dataclass
class Figure:
    """A headline number: ``value`` is None when there is nothing to compute it from (never a made-up 0)."""

    key: str
    label: str
    value: float | int | None
    unit: str = ""
    records: Records | None = None


@dataclass
class Section:
    """One KPI: its tested definition (docs/reports.md#<key>), headline figures and tables."""

    key: str  # standing, utilisation, approval, revocation, risk
    title: str
    definition: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass
class Report:
    """A period's KPIs, optionally narrowed to a tier, a target or a policy."""

    start: datetime
    end: datetime
    filters: dict  # {"tier": 1, "target": "srv01", "policy": "servers"}; absent keys: everything
    sections: list[Section]
    generated_at: datetime | None = None

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def figure(self, section: str, key: str) -> Figure:
        return next(f for f in self.section(section).figures if f.key == key)
