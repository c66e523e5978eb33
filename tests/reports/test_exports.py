"""Exports of a Report: CSV (figures, one table), JSON (everything, with records links and definitions), Markdown."""
import csv
import io
import json

from jitad.reports import exports
from jitad.reports.charts import chart_svg
from tests.reports.conftest import HOSTILE, sample_report


def _rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_table_csv_has_the_rows_and_their_records_links():
    table = sample_report().section("standing").tables[0]
    rows = _rows(exports.table_csv(table, base="https://jitad.example"))
    assert rows[0] == ["day", "standing", "jit", "records"]
    assert rows[1] == ["2026-12-01", "40", "3", "https://jitad.example/admin/elevation/grant/?id__in=1%2C2%2C3"]
    assert rows[3] == ["2026-12-03", "", "9", ""]  # a missing value stays empty, never a made-up 0


def test_csv_cells_a_spreadsheet_would_run_are_quoted():
    """GIVEN a target named like a formula WHEN its table is exported THEN the cell starts with an apostrophe."""
    rows = _rows(exports.table_csv(sample_report().section("standing").tables[1]))
    assert rows[3][0] == "'=cmd|' /C calc'!A0"
    assert rows[2][0] == HOSTILE  # CSV is data: no HTML escaping there


def test_figures_csv_lists_every_headline_figure_with_period_and_definition():
    report = sample_report(filters={"tier": 1})
    rows = _rows(exports.figures_csv(report))
    assert rows[0][:5] == ["section", "figure", "label", "value", "unit"]
    assert len(rows) - 1 == sum(len(s.figures) for s in report.sections)
    reduction = next(r for r in rows if r[1] == "reduction")
    assert reduction[3] == "75" and reduction[4] == "%" and reduction[7] == "tier=1"
    assert reduction[8] == "/admin/elevation/grant/?state=active" and reduction[9] == "docs/reports.md#standing"
    assert next(r for r in rows if r[1] == "p95")[3] == ""


def test_json_holds_the_whole_report():
    data = json.loads(exports.report_json(sample_report(), base="https://jitad.example"))
    assert data["start"] == "2026-11-05T00:00:00+00:00"
    assert [s["key"] for s in data["sections"]] == ["standing", "utilisation", "approval", "revocation", "risk"]
    standing = data["sections"][0]
    assert standing["definition_url"] == "docs/reports.md#standing"
    assert standing["figures"][0]["records"] == {"model": "elevation.grant", "query": {"state": "active"}, "count": 4,
                                                 "url": "https://jitad.example/admin/elevation/grant/?state=active"}
    trend = standing["tables"][0]
    assert trend["chart"] == {"kind": "line", "x": "day", "y": ["standing", "jit"]}
    assert trend["rows"][0] == {"day": "2026-12-01", "standing": 40, "jit": 3}
    assert trend["records"]["0"]["count"] == 3
    assert data["sections"][2]["figures"][1]["value"] is None


def test_markdown_escapes_table_cells():
    text = exports.report_markdown(sample_report())
    assert "## Standing access reduction" in text
    assert "| Reduction | 75% | [records](/admin/elevation/grant/?state=active) |" in text
    assert "| 95th percentile | — |  |" in text
    assert "=cmd\\|' /C calc'!A0" in text  # a pipe cannot end the cell


def test_line_chart_draws_a_point_per_value_and_breaks_at_a_gap():
    svg = str(chart_svg(sample_report().section("standing").tables[0]))
    assert svg.startswith("<svg") and "<title id=\"chart-trend-title\">Standing admins per day</title>" in svg
    assert svg.count('class="point series-0"') == 3  # 40, 30, (missing), 10
    assert svg.count('class="point series-1"') == 4
    assert svg.count('class="line series-0"') == 2  # broken at the missing day
    assert 'data-x="2026-12-04" data-value="10"' in svg
    assert "style=" not in svg and "<script" not in svg


def test_bar_chart_escapes_labels():
    svg = str(chart_svg(sample_report().section("standing").tables[1]))
    assert svg.count("<rect class=\"bar") == 3
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_histogram_and_no_chart():
    report = sample_report()
    svg = str(chart_svg(report.section("approval").tables[0]))
    assert 'data-kind="histogram"' in svg and svg.count('class="bar series-0"') == 3
    table = report.section("approval").tables[0]
    table.chart = None
    assert chart_svg(table) == ""


def _one(kind, values):
    from jitad.reports.figures import Chart, Column, Table

    return Table(key="t", title="T", columns=[Column("x", "X"), Column("v", "V")],
                 rows=[{"x": f"x{i}", "v": v} for i, v in enumerate(values)], chart=Chart(kind, "x", ("v",)))


def test_negative_values_hang_below_the_zero_line():
    """GIVEN a change that went both ways WHEN drawn as bars THEN the zero axis sits inside the plot and each
    bar stands on it: a negative bar starts at the axis, a positive one ends there."""
    import re

    svg = str(chart_svg(_one("bar", [20, -10])))
    axis_y = float(re.search(r'<line class="axis" x1="\d+" y1="([\d.]+)"', svg).group(1))
    bars = re.findall(r'<rect class="bar series-0" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg)
    (up_y, up_h), (down_y, down_h) = [(float(y), float(h)) for y, h in bars]
    assert abs(up_y + up_h - axis_y) < 0.2 and abs(down_y - axis_y) < 0.2 and abs(up_h - 2 * down_h) < 0.3
    assert ">-10<" in svg  # the lowest tick


def test_degenerate_tables_still_draw_or_draw_nothing():
    assert 'class="point series-0"' in str(chart_svg(_one("line", [5])))  # one point, centred
    nothing = str(chart_svg(_one("line", [None, None])))
    assert nothing.startswith("<svg") and "circle" not in nothing  # axes, no points
    assert str(chart_svg(_one("bar", []))) == ""
    assert 'class="bar' in str(chart_svg(_one("histogram", [0, 0.004, 0.3])))


def test_a_long_table_draws_its_first_bars_and_says_so():
    from jitad.reports.charts import MAX_BARS

    svg = str(chart_svg(_one("bar", list(range(MAX_BARS + 12)))))
    assert svg.count('class="bar series-0"') == MAX_BARS
    assert f"the first {MAX_BARS} of {MAX_BARS + 12} rows are drawn" in svg


def test_pages_read_durations_times_and_flags_in_words():
    assert exports.value_text(45, "s") == "45 s" and exports.value_text(720, "s") == "12 min"
    assert exports.value_text(7500, "s") == "2 h 5 min" and exports.value_text(3 * 86400 + 4 * 3600, "s") == "3 d 4 h"
    assert exports.value_text("2026-12-01T23:21:22.302436+00:00") == "2026-12-01 23:21 UTC"
    assert exports.value_text("2026-12-01") == "2026-12-01" and exports.value_text("SRV01") == "SRV01"
    assert exports.value_text(True) == "yes" and exports.value_text(None, "s") == "—"


def test_axis_ticks_are_round_numbers():
    import re

    svg = str(chart_svg(_one("histogram", [3, 0, 1])))
    ticks = re.findall(r'<text class="tick" x="\d+" y="[\d.]+" text-anchor="end">([^<]+)</text>', svg)
    assert ticks == ["0", "1", "2", "3"]
