"""The emergency checkout page says who was actually told: each destination and approver with its delivery's state.

Against the real parts: the Samba DC seals the account, the real worker delivers to the webhook receiver (the
security channel) and the SMTP server (the approvers), and the page is read through the portal's own views.
"""
from django.conf import settings
from django.urls import reverse

from jitad.breakglass.models import Checkout
from jitad.notifications.models import Delivery
from tests.support.mfa import backup_codes, verify_session
from tests.support.waiting import wait_for



def _emergency(client, account, responder):
    verify_session(client, responder)
    response = client.post(reverse("breakglass:checkout-new", args=[account.pk]), {
        "incident_ref": "INC-77", "reason": "DC01 is down and nobody can log on", "runbook": "dc-outage",
        "duration_minutes": "30", "emergency": "on", "otp": backup_codes(responder, 1)[0]}, follow=True)
    assert response.status_code == 200, response.content.decode()[-2000:]
    checkout = Checkout.objects.get(account=account)
    assert checkout.mode == Checkout.Mode.EMERGENCY
    return checkout, response.content.decode()


def _page(client, checkout) -> str:
    return client.get(reverse("breakglass:checkout", args=[checkout.pk])).content.decode()


def test_the_page_shows_each_delivery_once_the_worker_made_it(live, client, people, sealed, alert_sink, smtp_sink):
    """GIVEN a security channel and two approvers with e-mail WHEN a responder checks out alone in emergency
    THEN the page promises nothing up front, and once the worker delivered, it shows the channel and both
    approvers as delivered (and the webhook and the mail server really got them)."""
    account = sealed(disable_when_sealed=False)
    checkout, first = _emergency(client, account, people.responder)
    assert "have been told" not in first and "Who is told" in first
    wait_for(lambda: any("EMERGENCY" in m["title"] for m in alert_sink.on("/alerts")),
             message="the emergency alert on the security channel")
    wait_for(lambda: not Delivery.objects.filter(notification__object_id=str(checkout.pk),
                                                 state=Delivery.State.PENDING).exists(),
             message="every emergency delivery made")
    page = _page(client, checkout)
    told = page[page.index('id="told"'):page.index("</section>", page.index('id="told"'))]
    assert "the security channel" in told and told.count(">delivered<") == 3, told
    for approver in (people.approver1, people.approver2):
        assert approver.username in told
        assert any("EMERGENCY" in m["Subject"] for m in smtp_sink.to(approver.email))
    assert "not configured" not in told and "told-no-channel" not in told
    # the polling fragment serves the same panel, and stops polling when nothing is pending
    fragment = client.get(reverse("breakglass:checkout-told", args=[checkout.pk])).content.decode()
    assert 'id="told"' in fragment and "hx-trigger" not in fragment


def test_without_a_security_channel_the_page_says_nobody_there_was_told(live, client, people, sealed, alert_sink,
                                                                         monkeypatch):
    """GIVEN no security channel configured (JITAD_ALERT_URLS empty in the web process) and an approver without an
    e-mail address WHEN a responder checks out alone in emergency THEN the page says the security team was not told,
    lists the approver as not told, and nothing reached the webhook."""
    monkeypatch.setattr(settings, "JITAD_ALERT_URLS", [])
    people.approver2.email = ""
    people.approver2.save(update_fields=["email"])
    account = sealed(disable_when_sealed=False)
    checkout, first = _emergency(client, account, people.responder)
    assert "have been told" not in first
    assert "No security channel is configured" in first and "not</strong> told" in first
    wait_for(lambda: not Delivery.objects.filter(notification__object_id=str(checkout.pk),
                                                 state=Delivery.State.PENDING).exists(),
             message="the approver's mail delivered")
    told = _page(client, checkout)
    told = told[told.index('id="told"'):told.index("</section>", told.index('id="told"'))]
    assert "the security channel" in told and ">not configured<" in told and ">delivered<" in told
    assert people.approver1.username in told
    assert people.approver2.username in told and "no e-mail address" in told
    assert not any("EMERGENCY" in m.get("title", "") for m in alert_sink.messages)
