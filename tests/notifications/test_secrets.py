"""No destination secret in the database, the admin or the logs.

Slack and Teams webhooks are tokens; generic webhooks carry them in the path, the
password or a header. jitad keeps the URLs in the environment and stores, shows and logs
only a masked form; errors are scrubbed of what that form hides.
"""
import uuid

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from jitad.notifications.models import Delivery, Notification
from jitad.notifications.services import named_destination, notification_create, redact, scrub
from tests.support.destinations import SECRET_PATH, TOKENS
from tests.support.waiting import wait_for

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops"
SLACK_SECRETS = ["TIiajkdnlazkcOXrIdevi7FQ", "A1BRTD4JD", "T1JJ3T3L2"]


def _no_secret(text: str, secrets) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked into: {text[:300]!r}"


def test_masked_forms_hide_tokens_wherever_they_sit():
    assert redact(SLACK) == "slack://T...2/A...D/T...Q/#...s"
    hook = f"json://jitad:{TOKENS['password']}@127.0.0.1:8080{SECRET_PATH}?+X-Api-Key={TOKENS['header']}"
    assert redact(hook) == "json://jitad:****@127.0.0.1:8080/s...s/T...D/B...D/x...{}".format(TOKENS["path"][-1])
    assert redact("mailto://ops:Sm7pPass@smtp.example.org?to=sec@example.org") == "mailto://ops:****@smtp.example.org/s...g"
    assert redact("email://sec@example.org") == "email://sec@example.org"
    assert redact("email://not an address") is None
    assert redact("no-scheme-at-all") is None
    error = f"POST {hook} failed: HTTPConnectionPool(host='127.0.0.1', port=8080): url: {SECRET_PATH} (refused)"
    cleaned = scrub(error, hook)
    _no_secret(cleaned, TOKENS.values())
    assert "127.0.0.1" in cleaned and "refused" in cleaned


@pytest.mark.django_db
def test_a_slack_url_is_never_stored_nor_shown_in_the_admin(settings, verified_client):
    settings.JITAD_NOTIFY_DESTINATIONS = {"slack-ops": [SLACK]}
    note = notification_create(event="test", subject="s", body="b", destinations=[named_destination("slack-ops")])
    d = note.deliveries.get()
    assert (d.destination, d.address) == ("JITAD_NOTIFY_SLACK_OPS", "slack://T...2/A...D/T...Q/#...s")
    row = " ".join(str(v) for v in Delivery.objects.filter(id=d.id).values().first().values())
    _no_secret(row, SLACK_SECRETS)

    client = verified_client(User.objects.create_superuser("root", email="root@example.org"))
    for url in (f"/admin/notifications/notification/{note.id}/change/", "/admin/notifications/notification/",
                f"/admin/notifications/delivery/{d.id}/change/", "/admin/notifications/delivery/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert b"slack://T...2/A...D/T...Q/#...s" in page.content or url.endswith("notification/")
        _no_secret(page.content.decode(), SLACK_SECRETS)


def test_a_failing_tokened_webhook_leaks_nothing_through_the_worker(live, alert_sink, celery_worker, verified_client,
                                                                     caplog):
    """GIVEN a destination whose URL holds tokens in its path, password and a header, and
    which always refuses WHEN a message to it is retried by the worker until it fails
    THEN the delivery row, its error, the admin pages, the worker's log and this
    process's log show the masked form and the error, never a token."""
    tag = uuid.uuid4().hex[:8]
    with transaction.atomic():
        note = notification_create(event="test.secret", subject=f"secret {tag}", body="b",
                                   destinations=[named_destination("secret")])
    d = note.deliveries.get()
    failed = wait_for(lambda: Delivery.objects.filter(id=d.id, state=Delivery.State.FAILED).first(), timeout=40,
                      message="the tokened delivery to fail")
    assert failed.attempts == 3 and "error=500" in failed.last_error
    assert failed.address.startswith(f"json://jitad:****@127.0.0.1:{alert_sink.port}/s...s/")
    assert alert_sink.hits.count(SECRET_PATH) == 3  # it really was tried, with the real URL

    client = verified_client(User.objects.create_superuser(f"root{tag}", email="root@example.org"))
    pages = [client.get(u).content.decode() for u in (
        f"/admin/notifications/notification/{note.id}/change/", f"/admin/notifications/delivery/{d.id}/change/",
        "/admin/notifications/delivery/?state__exact=failed")]
    assert all(failed.address in p for p in pages)
    row = " ".join(str(v) for v in Delivery.objects.filter(id=d.id).values().first().values())
    for text in [row, *pages, celery_worker.log_tail(10**7), caplog.text,
                 str(list(Notification.objects.filter(id=note.id).values()))]:
        _no_secret(text, TOKENS.values())
    assert f"delivery {d.id} (apprise to {failed.address}) failed for good" in celery_worker.log_tail(10**7)
