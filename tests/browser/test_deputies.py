"""Deputies in a real browser against a real DC and worker.

GIVEN an AD approver and an AD colleague who is not one WHEN the approver opens Deputies from the
menu and names the colleague until a date THEN the page lists it under "Given" as running;
WHEN the colleague logs in THEN their menu offers Deputies, which says whom they may decide for,
and they decline it; the approver's page then shows it ended early by the colleague.
"""
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jitad.elevation.models import Delegation
from tests.browser.conftest import fresh_page, shot
from tests.browser.flows import login_and_enrol

pytestmark = pytest.mark.django_db(transaction=True)


def test_name_a_deputy_who_sees_it_and_declines(browser, request, page, portal, ad_person, make_target):
    make_target(mode="manual")  # its policy's approvers are the AD group "approvers"
    boss, boss_pw = ad_person("approvers", prefix="boss")
    mate, mate_pw = ad_person("admins", prefix="mate")
    # the colleague logs in first, so jitad knows them
    mate_page = next(fresh_page(browser, request, viewport={"width": 1280, "height": 860}))
    login_and_enrol(mate_page, portal, mate, mate_pw, name_prefix="deputy-mate-")
    expect(mate_page.get_by_role("link", name="Deputies")).to_have_count(0)  # neither approver nor deputy yet

    login_and_enrol(page, portal, boss, boss_pw, name_prefix="deputy-boss-")
    page.get_by_role("link", name="Deputies").click()
    expect(page).to_have_url(re.compile(r"/deputies/"))
    page.get_by_label(re.compile("Deputy")).fill(mate)
    until = timezone.localtime(timezone.now() + timedelta(days=5))
    page.get_by_label("Until").fill(until.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label(re.compile("Reason")).fill("two weeks off")
    shot(page, "deputy-01-form")
    page.get_by_role("button", name="Delegate my approvals").click()
    row = page.locator("#delegations-given tr[data-state='running']", has_text=mate)
    expect(row).to_have_count(1)
    shot(page, "deputy-02-given")
    d = Delegation.objects.get(delegator__username=boss)
    assert d.deputy.username == mate and d.mfa_method == "totp"

    mate_page.reload()
    mate_page.get_by_role("link", name="Deputies").click()
    expect(mate_page.locator("#deciding-for")).to_contain_text(f"You may decide for {boss} until")
    shot(mate_page, "deputy-03-received")
    mate_page.locator(f"#end-{d.pk}").click()
    expect(mate_page.locator(f"#delegation-{d.pk}")).to_have_attribute("data-state", "revoked")
    expect(mate_page.locator("#deciding-for")).to_have_count(0)

    page.reload()
    expect(page.locator(f"#delegation-{d.pk}")).to_contain_text(f"ended early by {mate}")
    mate_page.context.close()
