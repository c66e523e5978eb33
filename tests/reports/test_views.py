"""The Reports pages: who may see them, the filter form (errors, never a 500), figures, charts, tables, exports."""
import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission, User

from tests.reports.conftest import HOSTILE

pytestmark = pytest.mark.django_db


def reader(name="auditor"):
    user = User.objects.create_user(username=name, email=f"{name}@jitad.test")
    user.user_permissions.add(Permission.objects.get(codename="view_reports", content_type__app_label="reports"))
    return user


@pytest.fixture
def auditor(verified_client):
    return verified_client(reader())


def test_reports_need_the_permission(verified_client, fake_report):
    client = verified_client(User.objects.create_user(username="plain"))
    for path in ("/reports/", "/reports/standing/", "/reports/standing.csv", "/reports/report.json", "/reports/report.md"):
        assert client.get(path).status_code == 403, path
    page = client.get("/", follow=True)  # My access
    assert page.status_code == 200 and 'href="/reports/"' not in page.content.decode()  # not in the nav either
    assert fake_report == []


def test_superuser_passes_and_anonymous_is_sent_to_login(client, verified_client, fake_report):
    assert client.get("/reports/").status_code == 302
    boss = User.objects.create_superuser(username="boss", email="boss@jitad.test")
    boss_client = verified_client(boss)
    assert boss_client.get("/reports/").status_code == 200
    assert 'href="/reports/"' in boss_client.get("/", follow=True).content.decode()
    admin_index = boss_client.get("/admin/")
    assert admin_index.status_code == 200 and b'id="reports-module"' in admin_index.content


def test_overview_shows_headline_figures_with_definitions_and_records(auditor, fake_report):
    r = auditor.get("/reports/")
    assert r.status_code == 200
    html = r.content.decode()
    assert '<a href="/reports/" aria-current="page">Reports</a>' in html  # the nav link, for this reader
    assert 'id="figure-standing-reduction"' in html and "75%" in html
    assert 'href="/admin/elevation/grant/?state=active">records (4)' in html
    assert "Standing admin memberships now" in html and "docs/reports.md#standing" in html
    assert 'id="figure-approval-p95"' in html and "—" in html
    call = fake_report[0]
    assert (call["end"] - call["start"]).days == 30 and call["tier"] is None and call["target"] is None


def test_filters_reach_the_report_and_every_link(auditor, fake_report, named):
    named('SRV"><b>x', "servers")
    r = auditor.get("/reports/", {"period": "2w", "tier": "0", "target": 'SRV"><b>x', "policy": "servers"})
    assert r.status_code == 200
    call = fake_report[0]
    assert (call["end"] - call["start"]).days == 14
    assert (call["tier"], call["target"], call["policy"]) == (0, 'SRV"><b>x', "servers")
    html = r.content.decode()
    assert "<b>x" not in html
    assert 'href="/reports/standing/?period=2w&amp;tier=0&amp;target=SRV%22%3E%3Cb%3Ex&amp;policy=servers"' in html


def test_dates_instead_of_a_period(auditor, fake_report):
    r = auditor.get("/reports/", {"start": "2026-10-01", "end": "2026-10-31"})
    assert r.status_code == 200
    call = fake_report[0]
    assert call["start"].isoformat() == "2026-10-01T00:00:00+00:00"
    assert call["end"].isoformat() == "2026-11-01T00:00:00+00:00"  # the end date is included, whole


@pytest.mark.parametrize("query, field, message", [
    ({"period": "forever"}, "period", "is not a period"),
    ({"period": "0d"}, "period", "longer than zero"),
    ({"period": "9999w"}, "period", "at most two years"),
    ({"start": "2026-10-31", "end": "2026-10-01"}, "start", "before the end"),
    ({"end": "2026-10-01"}, "start", "start date too"),
    ({"start": "2026-13-45"}, "start", "valid date"),
    ({"start": "2026-10-01", "period": "2w"}, "period", "not both"),
    ({"tier": "7"}, "tier", "valid choice"),
    ({"tier": "<script>"}, "tier", "valid choice"),
    ({"target": "x" * 500}, "target", "at most 200"),
])
def test_bad_filters_are_form_errors_never_500(auditor, fake_report, query, field, message):
    r = auditor.get("/reports/", query)
    assert r.status_code == 400
    html = r.content.decode()
    assert f'id="id_{field}-errors"' in html and message in html
    assert "<script>" not in html.split("<main", 1)[1]
    assert fake_report == []
    for path in ("/reports/standing/", "/reports/report.json", "/reports/standing.csv"):
        assert auditor.get(path, query).status_code == 400


def test_section_page_draws_charts_above_their_tables(auditor, fake_report):
    r = auditor.get("/reports/standing/", {"period": "30d"})
    assert r.status_code == 200
    html = r.content.decode()
    assert html.count("<svg class=\"chart") == 2
    assert 'id="chart-standing-trend"' in html and 'class="point series-0"' in html
    assert "<td>2026-12-01</td><td>40</td><td>3</td>" in html
    assert '<a class="records" href="/admin/elevation/grant/?id__in=1%2C2%2C3">records</a>' in html
    assert 'href="/reports/standing.csv?period=30d&amp;table=trend"' in html
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert " style=" not in html.split("<main", 1)[1]
    assert fake_report[0]["sections"] == ("standing",)  # a section's page computes only that section
    auditor.get("/reports/approval.csv", {"table": "approval_time"})
    assert fake_report[1]["sections"] == ("approval",)
    auditor.get("/reports/")
    assert "sections" not in fake_report[2]  # the overview shows every section


def test_unknown_section_is_404(auditor, fake_report):
    assert auditor.get("/reports/nonsense/").status_code == 404
    assert auditor.get("/reports/nonsense.csv").status_code == 404


def test_csv_exports(auditor, fake_report):
    r = auditor.get("/reports/standing.csv", {"table": "trend"})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert 'filename="jitad-standing-trend.csv"' in r["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0] == ["day", "standing", "jit", "records"]
    assert rows[1][:3] == ["2026-12-01", "40", "3"] and rows[1][3].endswith("/admin/elevation/grant/?id__in=1%2C2%2C3")
    figures = list(csv.reader(io.StringIO(auditor.get("/reports/standing.csv").content.decode())))
    assert [r[1] for r in figures[1:]] == ["reduction", "standing_now"]
    missing = auditor.get("/reports/standing.csv", {"table": "<nope>"})
    assert missing.status_code == 404 and b"trend, by_target" in missing.content


def test_json_and_markdown_exports(auditor, fake_report, named):
    named("SRV01", "servers")
    r = auditor.get("/reports/report.json", {"policy": "servers"})
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    data = json.loads(r.content)
    assert data["filters"] == {"policy": "servers"} and len(data["sections"]) == 5
    assert data["sections"][0]["figures"][0]["records"]["url"] == "http://testserver/admin/elevation/grant/?state=active"
    md = auditor.get("/reports/report.md")
    assert md.status_code == 200 and b"## Approval time" in md.content


def test_unknown_target_or_policy_is_a_form_error(auditor, fake_report, named):
    """GIVEN a target and a policy WHEN a page or an export names others THEN 400 with the error, no report built."""
    named("SRV01", "servers")
    r = auditor.get("/reports/", {"target": "SRV99", "policy": "servers"})
    assert r.status_code == 400 and "No target is named &#x27;SRV99&#x27;" in r.content.decode()
    r = auditor.get("/reports/report.json", {"policy": "nope"})
    assert r.status_code == 400 and "No policy is named 'nope'" in r.content.decode()
    assert fake_report == []


def test_only_get(auditor, fake_report):
    assert auditor.post("/reports/").status_code in (403, 405)


FILTERS = ("period", "start", "end", "tier", "target", "policy", "table")


def test_fuzzed_filters_never_500(auditor, fake_report):
    """GIVEN any values (odd, huge, markup, NUL, unicode) in any filter WHEN every Reports page and export is
    asked THEN nothing answers 500 and no value comes back unescaped."""
    from hypothesis import given, strategies as st

    from tests.test_portal_fuzz import FUZZ, value

    paths = ["/reports/", "/reports/approval/", "/reports/standing.csv", "/reports/report.json", "/reports/report.md"]

    @FUZZ
    @given(query=st.dictionaries(st.sampled_from(FILTERS), value, max_size=4), path=st.sampled_from(paths))
    def check(query, path):
        r = auditor.get(path, query)
        assert r.status_code < 500, (path, query)
        if r["Content-Type"].startswith("text/html"):
            assert "<script>alert(1)</script>" not in r.content.decode()

    check()


def test_a_long_table_is_cut_on_the_page_but_whole_in_the_csv(auditor, monkeypatch):
    from jitad.reports.views import pages
    from tests.reports.conftest import sample_report

    def build(**kwargs):
        report = sample_report(kwargs["start"], kwargs["end"])
        report.section("revocation").tables[0].rows = [{"target": f"SRV{i:04d}", "count": i} for i in range(250)]
        return report

    monkeypatch.setattr(pages, "report_build", build)
    html = auditor.get("/reports/revocation/").content.decode()
    assert html.count("<td>SRV0") == pages.PAGE_ROWS and "50 more are in the CSV" in html
    rows = list(csv.reader(io.StringIO(auditor.get("/reports/revocation.csv", {"table": "failures"}).content.decode())))
    assert len(rows) == 1 + 250


# -- with the real KPI selector -------------------------------------------------------------
def _history(n: int):
    """``n`` targets (two tiers, one shared policy), each with a grant, a scan and a standing admin in the last days.

    Every grant starts at 03:xx local time, off hours on any day of the week, so the risk section's off-hours list is
    never empty: which branches a page runs must not depend on the hour the test runs at."""
    from datetime import datetime, timedelta

    from django.utils import timezone

    from jitad.reports.selectors.kpis.common import WorkingHours
    from tests.reports.rows import grant, person, scan, standing_admin, target

    now = timezone.now()
    today = now.astimezone(WorkingHours().tz).date()
    for i in range(n):
        t = target(tier=i % 2, policy="shared")
        u = person()
        day = today - timedelta(days=1 + i % 5)
        start = datetime(day.year, day.month, day.day, 3, 5 * (i % 7), tzinfo=WorkingHours().tz)
        grant(u, t, activated=start, expires=start + timezone.timedelta(hours=1),
              revoked=start + timezone.timedelta(hours=1, seconds=4))
        scan(t, when=now - timezone.timedelta(days=20), standing=2)
        standing_admin(t, f"S-1-5-21-1-2-3-{1000 + i}", first_seen=now - timezone.timedelta(days=40),
                       resolved=now - timezone.timedelta(days=3) if i % 3 else None)


def _page_queries(client, path) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200, path
    return len(captured)


def test_pages_take_a_bounded_number_of_queries(auditor, django_assert_max_num_queries):
    """GIVEN a few records WHEN each Reports page and export is drawn from the real KPI selector THEN it runs at most
    a fixed number of queries; GIVEN ten times as many records THEN exactly as many as before."""
    from jitad.reports.services.snapshots import snapshots_record

    _history(3)
    snapshots_record()
    paths = ["/reports/", *[f"/reports/{k}/" for k in ("standing", "utilisation", "approval", "revocation", "risk")],
             "/reports/report.json", "/reports/standing.csv?table=trend", "/reports/?tier=1&policy=shared"]
    auditor.get("/reports/")  # first-use caches (content types)
    few = {}
    for path in paths:
        with django_assert_max_num_queries(40):
            few[path] = _page_queries(auditor, path)
    _history(30)
    snapshots_record()
    many = {path: _page_queries(auditor, path) for path in paths}
    assert many == few, (few, many)


def test_real_report_renders_and_links_records(auditor):
    from jitad.reports.services.snapshots import snapshots_record

    _history(4)
    snapshots_record()
    html = auditor.get("/reports/revocation/").content.decode()
    assert 'id="figure-revocation-ended"' in html
    overview = auditor.get("/reports/").content.decode()
    assert overview.count('class="report-section"') == 5
    data = json.loads(auditor.get("/reports/report.json").content)
    assert next(f for f in data["sections"][3]["figures"] if f["key"] == "ended")["value"] == 4
