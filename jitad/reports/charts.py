"""Server-side SVG charts of a report's tables: a line chart for trends, bars for categories, a histogram for buckets.

No script, no inline style (the Content-Security-Policy): colours and sizes come from
classes in jitad/static/jitad/reports.css. Every label is escaped. Each chart has a
<title> and <desc>, axis labels, and a <title> per point or bar; the table below it on the
page holds the same values for anyone who cannot see the drawing.
"""
import math
from dataclasses import replace
from datetime import date, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .figures import Chart, Table

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 40, 20, 56  # margins: y ticks on the left, x labels below, room for the last label
TICKS = 4
# Beyond these a drawing stops helping (and weighs on the page): the table below has every row.
MAX_BARS, MAX_POINTS = 30, 400


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"


def _nice_step(raw: float, whole: bool) -> float:
    """A round tick step at or above ``raw`` (1, 2, 2.5, 5 x 10^n); at least 1 for counts."""
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return max(step, 1.0) if whole else step


def _scale(values: list[float | None]) -> tuple[float, float, float]:
    """(low, top, step) of the y axis: round ticks that hold every value and zero."""
    known = [v for v in values if v is not None] or [0.0]
    hi, lo = max(max(known), 0.0), min(min(known), 0.0)
    step = _nice_step((hi - lo) / TICKS, all(float(v).is_integer() for v in known))
    top, low = step * math.ceil(hi / step - 1e-9), -step * math.ceil(-lo / step - 1e-9)
    return low + 0.0, max(top, low + step), step  # + 0.0: no "-0" tick


def _labels(table: Table) -> dict[str, str]:
    return {c.key: c.label + (f" ({c.unit})" if c.unit else "") for c in table.columns}


def _y(v: float, scale: tuple[float, float, float]) -> float:
    """The SVG y of value ``v`` on the scale (low, top, step)."""
    low, top, _step = scale
    plot_h = HEIGHT - TOP - BOTTOM
    return TOP + plot_h * (top - v) / (top - low)


def _frame(table: Table, chart: Chart, scale: tuple[float, float, float], x_labels: list[str], slot: float,
           centred: bool) -> list[str]:
    """Axes, gridlines with their values, x labels (thinned to fit) and the axis titles."""
    labels = _labels(table)
    plot_h = HEIGHT - TOP - BOTTOM
    out = []
    low, top, step = scale
    for i in range(round((top - low) / step) + 1):
        v = low + step * i
        y = _y(v, scale)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(v))}</text>')
    every = max(1, -(-len(x_labels) // 8))  # at most 8 labels under the axis
    for i, label in enumerate(x_labels):
        if i % every and i != len(x_labels) - 1:
            continue
        x = LEFT + slot * (i + 0.5 if centred else i)
        short = label if len(label) <= 16 else label[:15] + "…"  # the whole label is in each point's <title>
        out.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(short)}</text>')
    zero = _y(0.0, scale)
    out.append(f'<line class="axis" x1="{LEFT}" y1="{zero:.1f}" x2="{WIDTH - RIGHT}" y2="{zero:.1f}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>')
    out.append(f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 14}" '
               f'text-anchor="middle">{escape(labels.get(chart.x, chart.x))}</text>')
    y_title = ", ".join(labels.get(k, k) for k in chart.y)
    out.append(f'<text class="axis-label" transform="translate(14 {TOP + plot_h / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_title)}</text>')
    return out


def _line(table: Table, chart: Chart, scale: tuple[float, float, float]) -> list[str]:
    """One polyline per series (broken where a value is missing), a circle with its own <title> per point."""
    labels = _labels(table)
    n = len(table.rows)
    plot_w = WIDTH - LEFT - RIGHT
    step = plot_w / max(n - 1, 1)
    xs = [_text(row.get(chart.x)) for row in table.rows]
    out = _frame(table, chart, scale, xs, step, centred=False)
    for s, key in enumerate(chart.y):
        runs, run = [], []
        points = []
        for i, row in enumerate(table.rows):
            v = _number(row.get(key))
            if v is None:
                if run:
                    runs.append(run)
                run = []
                continue
            x, y = (LEFT + step * i if n > 1 else LEFT + plot_w / 2), _y(v, scale)
            run.append(f"{x:.1f},{y:.1f}")
            points.append(f'<circle class="point series-{s}" cx="{x:.1f}" cy="{y:.1f}" r="3" data-x="{escape(xs[i])}" '
                          f'data-value="{escape(_fmt(v))}"><title>{escape(labels.get(key, key))}, {escape(xs[i])}: '
                          f'{escape(_fmt(v))}</title></circle>')
        if run:
            runs.append(run)
        out += [f'<polyline class="line series-{s}" points="{" ".join(r)}"/>' for r in runs]
        out += points
    return out


def _bars(table: Table, chart: Chart, scale: tuple[float, float, float], gap: float) -> list[str]:
    """Grouped bars per category (series side by side); ``gap`` is the share of a slot left empty."""
    labels = _labels(table)
    n = max(len(table.rows), 1)
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / n
    xs = [_text(row.get(chart.x)) for row in table.rows]
    out = _frame(table, chart, scale, xs, slot, centred=True)
    width = slot * (1 - gap) / len(chart.y)
    for i, row in enumerate(table.rows):
        for s, key in enumerate(chart.y):
            v = _number(row.get(key))
            if v is None:
                continue
            y0, y1 = sorted((_y(0.0, scale), _y(v, scale)))
            x = LEFT + slot * i + slot * gap / 2 + width * s
            out.append(f'<rect class="bar series-{s}" x="{x:.1f}" y="{y0:.1f}" width="{width:.1f}" '
                       f'height="{y1 - y0:.1f}" data-x="{escape(xs[i])}" data-value="{escape(_fmt(v))}">'
                       f'<title>{escape(labels.get(key, key))}, {escape(xs[i])}: {escape(_fmt(v))}</title></rect>')
    return out


def chart_svg(table: Table, *, chart_id: str = "") -> SafeString:
    """The table's chart as inline SVG, or "" when it has none (or nothing to draw)."""
    chart = table.chart
    if chart is None or chart.kind not in ("line", "bar", "histogram") or not table.rows:
        return mark_safe("")
    total = len(table.rows)
    limit = MAX_POINTS if chart.kind == "line" else MAX_BARS
    if total > limit:
        table = replace(table, rows=table.rows[:limit])
    values = [_number(row.get(k)) for row in table.rows for k in chart.y]
    scale = _scale(values)
    if chart.kind == "line":
        body = _line(table, chart, scale)
    else:
        body = _bars(table, chart, scale, gap=0.3 if chart.kind == "bar" else 0.04)
    labels = _labels(table)
    series = ", ".join(labels.get(k, k) for k in chart.y)
    ident = escape(chart_id or f"chart-{table.key}")
    kind = {"line": "Trend", "bar": "Bar chart", "histogram": "Distribution"}[chart.kind]
    legend = []
    if len(chart.y) > 1:
        for s, key in enumerate(chart.y):
            x = LEFT + 8 + 150 * s
            legend.append(f'<rect class="swatch series-{s}" x="{x}" y="2" width="10" height="10"/>'
                          f'<text class="tick" x="{x + 14}" y="11">{escape(labels.get(key, key))}</text>')
    return mark_safe(
        f'<svg class="chart chart-{chart.kind}" id="{ident}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" xmlns="http://www.w3.org/2000/svg" data-kind="{chart.kind}">'
        f'<title id="{ident}-title">{escape(table.title)}</title>'
        f'<desc id="{ident}-desc">{escape(kind)} of {escape(series)} by {escape(labels.get(chart.x, chart.x))}; '
        + (f'the first {limit} of {total} rows are drawn; ' if total > limit else '')
        + 'the values are in the table below.</desc>'
        + "".join(legend) + "".join(body) + "</svg>")
