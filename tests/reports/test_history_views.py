"""The access-history page: permission, the form's errors (never a 500), the table with admin links, the admin entry."""
import pytest
from django.contrib.auth.models import Permission

from .history_builders import at, grant, policy, reporter, target, user

pytestmark = pytest.mark.usefixtures("db")
URL = "/reports/history/"


@pytest.fixture
def srv():
    t = target("SRV01")
    policy(t)
    return t


def test_needs_view_reports(verified_client, srv):
    assert verified_client(user("alice")).get(URL).status_code == 403


def test_the_table_shows_the_grant_with_links_and_utc(verified_client, srv):
    alice, bob = user("alice"), user("bob")
    g = grant(srv, alice, start=at(0), end=at(2), approvers=[bob], justification="disk full", ticket="INC-42")
    page = verified_client(reporter()).get(URL, {"target": "SRV01", "person": "", "at": "2026-06-01T11:00Z",
                                                 "start": "", "end": ""})
    assert page.status_code == 200
    html = page.content.decode()
    assert "INC-42" in html and "disk full" in html and "bob" in html
    assert f"/admin/elevation/grant/{g.pk}/change/" in html
    assert f"/admin/elevation/accessrequest/{g.request_id}/change/" in html
    assert "2026-06-01T10:00:00+00:00" in html  # UTC beside the display-zone time


@pytest.mark.parametrize("params, message", [
    ({"target": "", "person": "", "at": "2026-06-01T10:00Z", "start": "", "end": ""}, "Name a target or a person"),
    ({"target": "nope", "person": "", "at": "2026-06-01T10:00Z", "start": "", "end": ""}, "No target is named"),
    ({"target": "SRV01", "person": "", "at": "soon", "start": "", "end": ""}, "is not a time"),
    ({"target": "SRV01", "person": "", "at": "", "start": "2026-06-02", "end": "2026-06-01"}, "ends before it starts"),
    ({"target": "SRV01", "at": "x" * 500}, "at most 40 characters"),
])
def test_bad_input_shows_the_error(verified_client, srv, params, message):
    page = verified_client(reporter()).get(URL, params)
    assert page.status_code == 200
    assert message in page.content.decode()


def test_a_link_naming_only_a_target_prefills_the_form(verified_client, srv):
    page = verified_client(reporter()).get(URL, {"target": "SRV01"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="SRV01"' in html and "Give a moment" not in html


def test_the_target_admin_page_links_to_the_history(verified_client, srv):
    admin = user("root")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    admin.user_permissions.add(Permission.objects.get(codename="view_reports"))
    page = verified_client(admin).get(f"/admin/elevation/target/{srv.pk}/change/")
    assert page.status_code == 200
    assert f"{URL}?target=SRV01" in page.content.decode()


def test_a_grant_admin_page_links_to_who_held_the_target_meanwhile(verified_client, srv):
    """GIVEN an ended grant WHEN an auditor opens it in the admin and follows its history link THEN the history
    page covers the grant's window and lists the grant and the other holder of that time."""
    import html as html_lib
    import re

    admin = user("root")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    alice, carol = user("alice"), user("carol")
    g = grant(srv, alice, start=at(0), end=at(2), justification="patching", ticket="CHG-7")
    other = grant(srv, carol, start=at(1), end=at(3), justification="disk full", ticket="INC-9")
    client = verified_client(admin)
    page = client.get(f"/admin/elevation/grant/{g.pk}/change/").content.decode()
    link = html_lib.unescape(re.search(r'href="(/reports/history/\?target=SRV01&amp;start=[^"]+)"', page).group(1))
    assert "end=" in link
    history = client.get(link)
    assert history.status_code == 200
    text = history.content.decode()
    assert "CHG-7" in text and "INC-9" in text
    assert f"/admin/elevation/grant/{other.pk}/change/" in text


def test_a_target_named_with_a_unicode_digit_is_unknown_not_a_500(verified_client, srv):
    """GIVEN "¹" (str.isdigit() is true for it, int() refuses it) as the target WHEN the history is asked
    THEN it is an unknown target, not a server error (found by the API fuzzer)."""
    page = verified_client(reporter()).get(URL, {"target": "¹", "at": "2026-06-01T10:00Z"})
    assert page.status_code == 200 and "No target is named" in page.content.decode()
