"""Browser tests: Debian's Chromium driven by Playwright against a live jitad server.

The server is pytest-django's live server on localhost (a secure context, so passkeys work),
sharing the test database with a real Celery worker and the session's Samba DC.
Screenshots of the main pages go to test-artifacts/screenshots/.
"""
import os
import shutil
import uuid

import pytest

from tests.conftest import ARTIFACTS

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run
# "inside" one unless told it is safe, which it is here (one thread, no async code).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("JITAD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: `make deps` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def portal(live_server, live, settings):
    """The live server's base URL (http://localhost:PORT), with passkeys bound to it."""
    url = live_server.url.replace("127.0.0.1", "localhost")
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [url]
    settings.JITAD_BASE_URL = url
    return url


@pytest.fixture
def page(browser, request):
    """A fresh browser context per test; a screenshot is kept when the test fails."""
    yield from fresh_page(browser, request, viewport={"width": 1280, "height": 860})


def fresh_page(browser, request, **context_options):
    """A page in a context of its own (Berlin time, British English, 15 s timeouts), for a fixture to
    yield from; a screenshot is kept when the test fails."""
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB", **context_options)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        shot(pg, f"FAILED-{request.node.name}")
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def ad_person(jit_ou):
    """``ad_person(*groups, prefix=)`` -> (sAMAccountName, password): an AD account in the given AD groups."""
    from jitad import directory

    def make(*groups: str, prefix="p"):
        sam = f"{prefix}{uuid.uuid4().hex[:7]}"
        password = "Pw-" + uuid.uuid4().hex
        with directory.connect() as d:
            dn = d.ensure_user(sam, jit_ou, password=password, display_name=f"Person {sam}")
            for name in groups:
                d.add_member(d.ensure_group(name, jit_ou), dn)
        return sam, password

    return make
