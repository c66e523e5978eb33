"""The Reports pages in a real browser: an auditor opens them, reads a chart, its table and its CSV export.

An AD account in the AD group "jitad-auditors" logs in through the portal with its AD
password and a TOTP enrolled from the page; the Django group mirrored from that AD group
holds ``reports.view_reports`` (and the view permission on grants, which with staff status
makes an auditor in the admin). Chromium enforces the site's Content-Security-Policy:
every violation and console error on the way fails the test.
"""
import csv
import io
import re

import pytest
from django.contrib.auth.models import Group, Permission
from playwright.sync_api import expect

from tests.browser.conftest import shot
from tests.browser.flows import login_and_enrol
from tests.browser.test_csp import Watch
from tests.reports.conftest import sample_report

pytestmark = pytest.mark.django_db(transaction=True)

AUDITORS = "jitad-auditors"


@pytest.fixture
def auditors():
    """The Django group an AD group of the same name is mirrored into, holding the auditor's permissions."""
    group = Group.objects.create(name=AUDITORS)
    group.permissions.add(Permission.objects.get(codename="view_reports", content_type__app_label="reports"),
                          Permission.objects.get(codename="view_grant", content_type__app_label="elevation"))
    return group


@pytest.fixture
def known_report(monkeypatch):
    """The pages draw a hand-made report (known figures), whatever the database holds; returns the calls."""
    from jitad.reports.views import pages

    calls = []

    def build(**kwargs):
        calls.append(kwargs)
        return sample_report(kwargs["start"], kwargs["end"],
                             {k: kwargs[k] for k in ("tier", "target", "policy") if kwargs.get(k) is not None})

    monkeypatch.setattr(pages, "report_build", build)
    return calls


def test_auditor_reads_a_chart_its_table_and_its_csv(page, portal, ad_person, auditors, known_report,
                                                     django_user_model):
    """GIVEN an AD auditor WHEN they open Reports from the nav, filter to two weeks and open a section
    THEN the trend is drawn (one point per value, a gap where a day has none), the table below holds
    the same values, the CSV export downloads those rows, and a records link opens the admin list."""
    watch = Watch(page.context)
    sam, password = ad_person(AUDITORS, prefix="au")
    login_and_enrol(page, portal, sam, password, name_prefix="reports-")
    django_user_model.objects.filter(username__iexact=sam).update(is_staff=True)

    page.goto(portal + "/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    expect(page).to_have_url(re.compile(r"/reports/$"))
    expect(page.locator("#figure-standing-reduction .value")).to_have_text("75%")
    page.get_by_label("Period").fill("14d")
    page.get_by_label("Tier").select_option("1")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"period=14d.*tier=1"))
    expect(page.locator("#report-period")).to_contain_text("tier: 1")
    assert (known_report[-1]["end"] - known_report[-1]["start"]).days == 14 and known_report[-1]["tier"] == 1
    shot(page, "reports-01-overview")

    page.get_by_role("link", name="Standing access reduction").click()
    expect(page).to_have_url(re.compile(r"/reports/standing/\?period=14d"))
    chart = page.locator("#chart-standing-trend")
    expect(chart).to_be_visible()
    expect(chart.locator("circle.point.series-0")).to_have_count(3)
    expect(chart.locator("circle.point.series-1")).to_have_count(4)
    expect(chart.locator("polyline.line.series-0")).to_have_count(2)
    assert chart.locator("circle.point.series-1").last.get_attribute("data-value") == "12"
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100  # drawn at a readable size (the stylesheet loaded)
    expect(page.locator("#chart-standing-by_target rect.bar")).to_have_count(3)
    table = page.locator("#table-trend table.report-data")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table.locator("tbody tr").first).to_contain_text("2026-12-01")
    expect(table.locator("tbody tr").nth(3)).to_contain_text("12")
    shot(page, "reports-02-section")

    with page.expect_download() as info:
        page.locator("#table-trend a.export-csv").click()
    download = info.value
    assert download.suggested_filename == "jitad-standing-trend.csv"
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert rows[0] == ["day", "standing", "jit", "records"]
    assert rows[1][:3] == ["2026-12-01", "40", "3"] and rows[3][:3] == ["2026-12-03", "", "9"]
    assert known_report[-1]["tier"] == 1  # the export used the page's filters

    page.locator("#table-trend a.records").first.click()
    expect(page).to_have_url(re.compile(r"/admin/elevation/grant/\?id__in=1%2C2%2C3$"))
    expect(page.locator("#changelist")).to_be_visible()
    shot(page, "reports-03-records")
    watch.assert_clean()


def test_auditor_reads_real_revocation_figures(page, portal, ad_person, auditors, django_user_model):
    """GIVEN four grants that ended in the last days, three removed 4 s after their end and one 2 h late
    WHEN an AD auditor opens Revocation success THEN the lateness histogram has a bar per bucket with
    3 in "1–10 s" and 1 in "≥ 1 h", the table below says the same, the late removal's records link
    opens the admin on exactly that grant, and the JSON export carries the same count."""
    import json
    from datetime import timedelta

    from django.utils import timezone

    from jitad.reports.services.snapshots import snapshots_record
    from tests.reports.rows import grant, person, target

    now = timezone.now()
    t = target(tier=1, policy="servers")
    late = None
    for i in range(4):
        end = now - timedelta(days=1 + i, hours=3)
        g = grant(person(), t, activated=end - timedelta(hours=1), expires=end,
                  revoked=end + (timedelta(hours=2) if i == 3 else timedelta(seconds=4)))
        late = g if i == 3 else late
    snapshots_record()
    watch = Watch(page.context)
    sam, password = ad_person(AUDITORS, prefix="ar")
    login_and_enrol(page, portal, sam, password, name_prefix="reports-real-")
    django_user_model.objects.filter(username__iexact=sam).update(is_staff=True)

    page.goto(portal + "/reports/?period=7d")
    expect(page.locator("#figure-revocation-ended .value")).to_have_text("4")
    page.get_by_role("link", name="Revocation success").click()
    chart = page.locator("#chart-revocation-lateness")
    expect(chart.locator("rect.bar")).to_have_count(6)
    assert chart.locator('rect.bar[data-x="1–10 s"]').get_attribute("data-value") == "3"
    assert chart.locator('rect.bar[data-x="≥ 1 h"]').get_attribute("data-value") == "1"
    lateness = page.locator("#table-lateness table.report-data")
    expect(lateness.locator("tr", has_text="1–10 s")).to_contain_text("3")
    shot(page, "reports-04-revocation")

    response = page.request.get(portal + "/reports/report.json?period=7d")
    assert response.status == 200
    data = json.loads(response.body())
    revocation = next(s for s in data["sections"] if s["key"] == "revocation")
    assert next(f for f in revocation["figures"] if f["key"] == "ended")["value"] == 4

    page.locator("#table-late a.records").first.click()
    expect(page).to_have_url(re.compile(rf"/admin/elevation/grant/\?.*id__in={late.pk}"))
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody tr")).to_contain_text(f"#{late.pk}")
    watch.assert_clean()
