"""The group watch: the DC's change feed brings an out-of-band member to the reconciler's check at once.

Against the real Samba DC (DirSync) and, end to end, a real worker whose elected scheduler runs
the watch while the periodic reconcile is a million seconds away: whatever removes the member
is the watch.
"""
import uuid
import pytest
from django.utils import timezone
from ldap3 import MODIFY_ADD

from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import DirectoryCookie, Grant
from jitad.elevation.services.group_watcher import WATCH_LEASE, WATCHED
from jitad.elevation.services.reconciler import RECONCILE_LEASE, RECONCILED
from jitad.engine.selectors import pulse_at
from jitad.engine.services import lease_release, lease_take
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for

from .helpers import ad_is_member, wait_state


def _active(make_user, target, prefix="holder"):
    user = make_user(prefix, groups=("admins",))
    return wait_state(services.request_create(requester=user, target=target, duration_minutes=30).grant.id,
                      Grant.State.ACTIVE)


def _by_hand(ldap_admin, group_dn: str, member_dn: str) -> None:
    """Put ``member_dn`` in the group as someone outside jitad would: a plain ldap3 modify."""
    conn = ldap_admin()
    try:
        assert conn.modify(group_dn, {"member": [(MODIFY_ADD, [member_dn])]}), conn.result
    finally:
        conn.unbind()


def _person(jit_ou, prefix="oob") -> str:
    with directory.connect() as d:
        return d.ensure_user(f"{prefix}{uuid.uuid4().hex[:8]}", jit_ou)


def test_an_out_of_band_member_is_removed_by_the_watch_audited_and_alerted(nodes, make_user, make_target, jit_ou,
                                                                          ldap_admin, alert_sink):
    """GIVEN a worker whose scheduler runs the group watch, the periodic reconcile a million seconds away, a
    JIT group with a granted member, and a group under the JIT OU that no target names WHEN someone puts a
    member in each by hand THEN the JIT group's intruder is removed (by the watch: nothing else runs),
    audited and alerted at the webhook; the granted member stays; the other group is left alone."""
    nodes.worker(nodes.env(JITAD_GROUP_WATCH_INTERVAL="0.5", JITAD_RECONCILE_INTERVAL="1000000"), beat=True)
    target = make_target()
    grant = _active(make_user, target)
    with directory.connect() as d:
        unmanaged = d.ensure_group(f"Other-{uuid.uuid4().hex[:6]}", jit_ou)
    wait_for(lambda: DirectoryCookie.objects.exists(), timeout=60, message="the watch's first read of the DC")
    intruder, bystander = _person(jit_ou), _person(jit_ou, "bystander")

    _by_hand(ldap_admin, unmanaged, bystander)
    _by_hand(ldap_admin, target.group_dn, intruder)

    wait_for(lambda: not ad_is_member(ldap_admin, target.group_dn, intruder), timeout=60,
             message="the intruder removed by the watch")
    assert ad_is_member(ldap_admin, target.group_dn, grant.user_dn)
    assert ad_is_member(ldap_admin, unmanaged, bystander)  # read in the same feed or before, and not jitad's
    # The member leaves AD first and the removal is recorded after (no DC call inside a transaction): wait for it.
    removal = wait_for(lambda: AuditEvent.objects.filter(action="membership.removed_unbacked",
                                                         data__member=intruder).first(),
                       timeout=30, message="the removal's audit event")
    assert removal.actor == "system:reconciler" and removal.data["group"] == target.group_dn
    assert not AuditEvent.objects.filter(action="membership.removed_unbacked", data__member=bystander).exists()
    alert = Notification.objects.get(event="reconcile.out_of_band", object_id=target.group_dn[:64])
    assert intruder in alert.body
    wait_for(lambda: any("Out-of-band admin membership removed" in m.get("title", "") for m in alert_sink.messages),
             timeout=30, message="the out-of-band alert at the webhook")


@pytest.mark.usefixtures("live")
def test_a_refused_cookie_starts_over_and_keeps_granted_members_and_each_dc_goes_on_from_its_own(
        make_user, make_target, jit_ou, ldap_admin):
    """GIVEN a JIT group with a granted member WHEN the watch first runs, then runs with a cookie the DC
    refuses THEN each starts over (every managed group checked once, as a full reconcile: an intruder
    put in before is removed) and the granted member is never removed. WHEN another DC answered the
    runs in between THEN this DC still goes on from its own cookie (no start over, no full read)."""
    target = make_target()
    grant = _active(make_user, target)
    intruder = _person(jit_ou)
    _by_hand(ldap_admin, target.group_dn, intruder)

    first = services.group_watch()
    assert first["restarted"] and first["removed"] == 1
    assert not ad_is_member(ldap_admin, target.group_dn, intruder)
    kept = DirectoryCookie.objects.get()
    assert kept.dc.startswith("CN=NTDS Settings,CN=DC1,")

    garbage = b"MSDS" + uuid.uuid4().bytes
    DirectoryCookie.objects.update(cookie=garbage)
    refused = services.group_watch()
    assert refused["restarted"] and refused["removed"] == 0
    assert bytes(DirectoryCookie.objects.get().cookie) != garbage

    DirectoryCookie.objects.update(current=False)  # another DC answered the last runs
    DirectoryCookie.objects.create(dc="CN=NTDS Settings,CN=DC2,CN=Servers,CN=Default-First-Site-Name,CN=Sites,"
                                      "CN=Configuration,DC=jitad,DC=test", cookie=garbage, current=True,
                                   started_at=timezone.now(), read_at=timezone.now())
    back = services.group_watch()
    assert not back["restarted"] and back["checked"]
    assert DirectoryCookie.objects.get(current=True).dc == kept.dc
    assert ad_is_member(ldap_admin, target.group_dn, grant.user_dn)
    removed = AuditEvent.objects.filter(action="membership.removed_unbacked").values_list("data__member", flat=True)
    assert list(removed) == [intruder]


@pytest.mark.usefixtures("live")
def test_a_change_met_while_a_reconcile_runs_is_read_again_after_it(make_user, make_target, jit_ou, ldap_admin):
    """GIVEN the watch's cookie WHEN an intruder joins while another process runs a reconcile (it holds the
    lease ``reconcile``) THEN the watch does not check the group beside it, and keeps its cookie; the next
    run, once the reconcile ended, reads the same change again and removes the intruder."""
    target = make_target()
    _active(make_user, target)
    assert services.group_watch()["restarted"]
    cookie = bytes(DirectoryCookie.objects.get().cookie)
    intruder = _person(jit_ou)
    _by_hand(ldap_admin, target.group_dn, intruder)
    assert lease_take(name=RECONCILE_LEASE, holder="other-host:1:abc", seconds=300)

    blocked = services.group_watch()

    assert not blocked["checked"]
    assert ad_is_member(ldap_admin, target.group_dn, intruder)
    assert bytes(DirectoryCookie.objects.get().cookie) == cookie
    lease_release(name=RECONCILE_LEASE, holder="other-host:1:abc")
    done = services.group_watch()
    assert done == {"changed": 1, "removed": 1, "restarted": False, "checked": True}
    assert not ad_is_member(ldap_admin, target.group_dn, intruder)


@pytest.mark.usefixtures("live")
def test_nothing_changed_checks_no_group(make_user, make_target, monkeypatch):
    """GIVEN the watch's cookie and no change since WHEN it runs THEN no group is read or judged, and the
    database is not written to (the DC gives the same cookie back)."""
    target = make_target()
    _active(make_user, target)
    services.group_watch()
    services.group_watch()
    saved = DirectoryCookie.objects.get().read_at
    judged = []
    monkeypatch.setattr("jitad.elevation.services.reconciler.reconcile_group",
                        lambda d, group_dn, allowed: judged.append(group_dn) or [])

    quiet = services.group_watch()

    assert quiet == {"changed": 0, "removed": 0, "restarted": False, "checked": True}
    assert judged == []
    assert DirectoryCookie.objects.get().read_at == saved  # the same cookie back: nothing written


@pytest.mark.django_db
def test_no_managed_group_asks_no_dc(settings):
    """GIVEN no enabled target (and no DC configured at all) WHEN the watch runs THEN it asks no DC and keeps no cookie."""
    settings.JITAD_LDAP_URLS = []
    assert services.group_watch() == {"changed": 0, "removed": 0, "restarted": False, "checked": True}
    assert not DirectoryCookie.objects.exists()
    assert pulse_at(name=WATCHED) is not None  # nothing to watch is a run to its end, for the watchdog
    assert pulse_at(name=RECONCILED) is None
    services.reconcile()
    assert pulse_at(name=RECONCILED) is not None


@pytest.mark.django_db
def test_one_watch_at_a_time(monkeypatch):
    """GIVEN another process running the watch (it holds the lease ``group-watch``) WHEN the task runs here
    THEN it does nothing; once the lease is given back, the next run does its work and gives it back."""
    runs = []
    monkeypatch.setattr("jitad.elevation.services.group_watcher.group_watch", lambda holder: runs.append(holder) or {})
    assert lease_take(name=WATCH_LEASE, holder="other-host:1:abc", seconds=60)

    assert services.group_watch_once() is None
    assert runs == []

    lease_release(name=WATCH_LEASE, holder="other-host:1:abc")
    assert services.group_watch_once() == {}
    assert len(runs) == 1
    assert lease_take(name=WATCH_LEASE, holder="third-host:1:def", seconds=1)


@pytest.mark.usefixtures("live")
def test_a_dc_that_refuses_the_feed_is_alerted_once_and_resolved(make_target, jit_ou, monkeypatch):
    """GIVEN a managed group and a DC that refuses the DirSync read (sent from a base that is not a naming
    context head, which Samba refuses as Windows does) WHEN the watch runs three times THEN one warning
    condition is raised, not one per run WHEN the DC answers again THEN it is resolved, once."""
    from jitad.directory.changes import ChangeFeed

    make_target()
    monkeypatch.setattr(ChangeFeed, "_naming_context", lambda self: jit_ou)

    runs = [services.group_watch() for _ in range(3)]

    assert [r["checked"] for r in runs] == [False, False, False]
    assert not DirectoryCookie.objects.exists()
    assert pulse_at(name=WATCHED) is None  # the watchdog sees the watch as stopped
    raised = Notification.objects.get(event="reconcile.watch_cannot_run")
    assert raised.severity == Notification.Severity.WARNING and "DirSync" in raised.body
    monkeypatch.undo()
    assert services.group_watch()["restarted"]
    assert pulse_at(name=WATCHED) is not None
    assert Notification.objects.filter(event="reconcile.watch_cannot_run.resolved").count() == 1
    assert Notification.objects.filter(event="reconcile.watch_cannot_run").count() == 1
