"""The evidence sweep's own rules, on rows alone: which grants get a pull, once; single-flight."""
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jitad.elevation.models import AccessRequest, EvidencePull, Grant
from jitad.elevation.services.evidence import LEASE, evidence_sweep, pulls_create
from jitad.engine.services import lease_release, lease_take

from . import builders

pytestmark = pytest.mark.django_db
SID = "S-1-5-21-7-8-9-2001"


def _grant(tgt, *, state=Grant.State.ACTIVE, activated=True, revoked_ago=None, sid=SID):
    now = timezone.now()
    who = builders.user(f"u{Grant.objects.count()}-{tgt.name}")
    pol = builders.policy(tgt, name=f"p-{who.username}")
    req = AccessRequest.objects.create(requester=who, target=tgt, policy=pol, duration_minutes=60,
                                       state=AccessRequest.State.APPROVED)
    return Grant.objects.create(
        request=req, user=who, target=tgt, group_dn=tgt.group_dn, state=state, user_sid=sid,
        expires_at=now + timedelta(minutes=30) if revoked_ago is None else now - revoked_ago,
        activated_at=now - timedelta(minutes=5) if activated else None,
        revoked_at=None if revoked_ago is None else now - revoked_ago)


@override_settings(JITAD_EVIDENCE_AFTER_MINUTES=60)
def test_a_pull_for_each_live_grant_on_a_winrm_target_once():
    """GIVEN grants on a WinRM target (active; ended 10 minutes ago; ended two hours ago; never live;
    without a SID) and an active grant on a target without WinRM WHEN the sweep looks for new grants
    THEN only the active one and the recently ended one get a pull, due now, read from the grant's
    start; WHEN it looks again THEN nothing new is created."""
    winrm = builders.target("SRV01", winrm_url="https://srv01.jitad.test:5986/wsman")
    plain = builders.target("SRV02")
    active = _grant(winrm)
    recent = _grant(winrm, state=Grant.State.REVOKED, revoked_ago=timedelta(minutes=10))
    _grant(winrm, state=Grant.State.REVOKED, revoked_ago=timedelta(hours=2))
    _grant(winrm, state=Grant.State.GRANTING, activated=False)
    _grant(winrm, sid="")
    _grant(plain)

    assert pulls_create() == 2
    pulls = {p.grant_id: p for p in EvidencePull.objects.all()}
    assert set(pulls) == {active.pk, recent.pk}
    assert pulls[active.pk].read_through == active.created_at
    assert pulls[active.pk].next_attempt_at <= timezone.now() and pulls[active.pk].finished_at is None
    assert pulls_create() == 0


def test_the_sweep_is_single_flight():
    assert lease_take(name=LEASE, holder="another-process", seconds=60)
    try:
        assert evidence_sweep() is None
    finally:
        lease_release(name=LEASE, holder="another-process")


def test_the_admin_lists_events_signals_and_pulls_read_only_and_filters_as_reports_link(verified_client):
    """GIVEN a grant with a stored event, a signal and a pull WHEN a superuser opens the three changelists,
    filtered as the Reports' risk figures link them THEN they show the rows, and nothing can be changed."""
    from jitad.elevation.models import SessionEvent, SessionSignal

    g = _grant(builders.target("SRV01", winrm_url="https://srv01.jitad.test:5986/wsman"))
    now = timezone.now()
    event = SessionEvent.objects.create(grant=g, host="SRV01", record=77, event_id=4624, at=now, sid=SID,
                                        logon_type=10, source="192.0.2.7", after_end=True, collected_at=now)
    signal = SessionSignal.objects.create(grant=g, kind=SessionSignal.Kind.LOGON_AFTER_END, record=77, event=event,
                                          severity="critical", at=now, raised_at=now, detail="logon of S-1-5-21 after")
    EvidencePull.objects.create(grant=g, created_at=now, read_through=now)
    root = builders.user("root")
    root.is_staff = root.is_superuser = True
    root.save()
    client = verified_client(root)
    start, end = (now - timedelta(days=1)).isoformat(), (now + timedelta(days=1)).isoformat()
    for url, text in (
        (f"/admin/elevation/sessionsignal/?id__in={signal.pk}", "logon of S-1-5-21 after"),
        ("/admin/elevation/sessionsignal/", "logon of S-1-5-21 after"),
        ("/admin/elevation/sessionevent/?after_end__exact=1", "192.0.2.7"),
        ("/admin/elevation/evidencepull/", f"#{g.pk}"),
    ):
        page = client.get(url)
        assert page.status_code == 200 and text in page.content.decode(), url
    page = client.get("/admin/elevation/sessionsignal/", {"kind__exact": "logon_after_end", "at__gte": start,
                                                         "at__lt": end})
    assert page.status_code == 200 and "logon of S-1-5-21 after" in page.content.decode()
    assert client.get(f"/admin/elevation/sessionsignal/{signal.pk}/delete/").status_code == 403
    assert client.get("/admin/elevation/sessionevent/add/").status_code == 403
