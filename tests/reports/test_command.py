"""``manage.py jitad_report``: the period and filters reach report_build; JSON, CSV, Markdown; clear errors."""
import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("jitad_report", *args, stdout=out)
    return out.getvalue()


def test_json_by_default_over_thirty_days(fake_report):
    data = json.loads(run())
    call = fake_report[0]
    assert (call["end"] - call["start"]).days == 30
    assert [s["key"] for s in data["sections"]] == ["standing", "utilisation", "approval", "revocation", "risk"]
    assert data["sections"][0]["figures"][0]["records"]["url"].endswith("/admin/elevation/grant/?state=active")


@pytest.mark.parametrize("period, hours", [("12h", 12), ("2w", 14 * 24), ("30d", 30 * 24)])
def test_periods(fake_report, period, hours):
    run("--period", period)
    call = fake_report[0]
    assert (call["end"] - call["start"]).total_seconds() == hours * 3600


def test_start_end_and_filters(fake_report, named):
    named("SRV01", "servers")
    run("--start", "2026-10-01", "--end", "2026-10-31", "--tier", "1", "--target", "SRV01", "--policy", "servers")
    call = fake_report[0]
    assert call["start"].isoformat() == "2026-10-01T00:00:00+00:00"
    assert call["end"].isoformat() == "2026-11-01T00:00:00+00:00"
    assert (call["tier"], call["target"], call["policy"]) == (1, "SRV01", "servers")


def test_csv_figures_and_one_table(fake_report):
    figures = list(csv.reader(io.StringIO(run("--format", "csv"))))
    assert figures[0][:3] == ["section", "figure", "label"] and len(figures) == 1 + 7
    table = list(csv.reader(io.StringIO(run("--format", "csv", "--table", "approval.approval_time"))))
    assert table == [["bucket", "requests"], ["< 5 min", "12"], ["5–30 min", "5"], ["> 30 min", "1"]]


def test_markdown_to_a_file(fake_report, tmp_path):
    out = tmp_path / "report.md"
    assert run("--format", "md", "--output", str(out)) == ""
    assert "## Revocation success" in out.read_text()


@pytest.mark.parametrize("args, message", [
    (("--period", "forever"), "is not a period"),
    (("--period", "0h"), "longer than zero"),
    (("--start", "yesterday"), "is not a date"),
    (("--start", "2026-10-31", "--end", "2026-10-01"), "before the end"),
    (("--start", "2026-10-01", "--period", "2w"), "not both"),
    (("--tier", "9"), "choose one of 0, 1, 2"),
    (("--format", "xml"), "choose one of json, csv, md"),
    (("--format", "json", "--table", "standing.trend"), "goes with --format csv"),
    (("--format", "csv", "--table", "standing.nope"), "standing.trend"),
    (("--output", "/nonexistent-dir/x.json"), "Cannot write"),
])
def test_bad_input_is_a_clear_command_error(fake_report, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_default_period_follows_the_setting(fake_report, settings):
    settings.JITAD_REPORT_PERIOD_DAYS = 7
    run()
    assert (fake_report[0]["end"] - fake_report[0]["start"]).days == 7


@pytest.mark.parametrize("args, message", [
    (("--target", "SRV99"), "--target: No target is named 'SRV99'"),
    (("--policy", "nope"), "--policy: No policy is named 'nope'"),
])
def test_unknown_names_are_errors_not_an_empty_report(fake_report, named, args, message):
    """GIVEN a target and a policy that exist WHEN the command names others THEN it refuses, never reporting zeros."""
    named("SRV01", "servers")
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert fake_report == []
