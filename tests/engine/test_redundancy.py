"""No single process is a single point of failure: two nodes, one of each process killed mid-wave."""
import random
from datetime import timedelta

import requests
from django.conf import settings
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.engine.models import Heartbeat
from jitad.engine.selectors import lease_state
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for

from ..elevation.helpers import ad_is_member


def _leader_node() -> str:
    holder = wait_for(lambda: lease_state(name="scheduler").held and lease_state(name="scheduler").holder,
                      timeout=30, message="a scheduler to lead")
    return holder.rsplit(":", 1)[0]  # "scheduler@node-a:<pid>" -> "scheduler@node-a"


def test_killing_the_leading_scheduler_a_worker_and_a_web_server_mid_wave(nodes, make_user, make_target, ldap_admin,
                                                                         alert_sink):
    """GIVEN two nodes, each running a web server, an engine worker and an elected scheduler,
    and 60 grants (10 people x 6 servers, rows interleaved) expiring one after another over 15 s
    WHEN, mid-wave, the leading scheduler, the other node's worker and the leader's web server
    are SIGKILLed
    THEN the other scheduler takes over and the surviving worker takes the dead one's claims:
    every grant is revoked exactly once, every membership is gone, no grant waited longer than
    a scheduler takeover plus a claim lease beyond the normal lateness, the surviving web
    server still answers, and each death is alerted to the security channel."""
    env = {name: nodes.env(JITAD_NODE_NAME=name) for name in ("node-a", "node-b")}
    workers = {name: nodes.worker(e) for name, e in env.items()}
    schedulers = {name: nodes.scheduler(e) for name, e in env.items()}
    webs = {name: nodes.web(e) for name, e in env.items()}

    targets = [make_target() for _ in range(6)]
    people = [make_user("wave", groups=("admins",)) for _ in range(10)]
    pairs = [(u, t) for u in people for t in targets]
    random.Random(13).shuffle(pairs)  # interleaved, as real requests arrive
    grants = [services.request_create(requester=u, target=t, duration_minutes=30).grant for u, t in pairs]
    ids = [g.id for g in grants]
    wait_for(lambda: Grant.objects.filter(id__in=ids, state=Grant.State.ACTIVE).count() == len(ids), timeout=180,
             message="all 60 grants active")

    start = timezone.now() + timedelta(seconds=2)
    for i, gid in enumerate(ids):
        Grant.objects.filter(id=gid).update(expires_at=start + timedelta(seconds=15 * i / len(ids)))

    leader = _leader_node().split("@", 1)[1]
    other = "node-b" if leader == "node-a" else "node-a"
    wait_for(lambda: Grant.objects.filter(id__in=ids, state=Grant.State.REVOKED).count() >= 12, timeout=60,
             message="the wave under way")
    killed_worker = Heartbeat.objects.get(pid=workers[other].proc.pid, role=Heartbeat.Role.WORKER).node
    schedulers[leader].kill()
    workers[other].kill()
    webs[leader].kill()

    def done():
        return Grant.objects.filter(id__in=ids, state=Grant.State.REVOKED).count() == len(ids)

    wait_for(done, timeout=120, message="every grant revoked after the kills "
             f"({Grant.objects.filter(id__in=ids).exclude(state=Grant.State.REVOKED).count()} left)")

    # Exactly once: one "revoked" event per grant, whatever worker or sweep handled it.
    revoked_events = list(AuditEvent.objects.filter(object_type="grant", action="grant.revoked",
                                                    object_id__in=[str(i) for i in ids])
                          .values_list("object_id", flat=True))
    assert sorted(revoked_events) == sorted(str(i) for i in ids)
    for g in Grant.objects.filter(id__in=ids):
        assert g.membership_removed is True
        assert not ad_is_member(ldap_admin, g.group_dn, g.user_dn), f"grant {g.id}: {g.user_dn} still in {g.group_dn}"

    # Liveness, not speed: nothing waited for more than a takeover and a lapsed claim (plus
    # a sweep and room for a loaded two-core machine); without failover nothing would end.
    bound = settings.JITAD_SCHEDULER_LEASE_SECONDS + settings.JITAD_LEASE_SECONDS + 10
    late = sorted(((g.revoked_at - g.expires_at).total_seconds(), g.id) for g in Grant.objects.filter(id__in=ids))
    assert late[-1][0] < bound, f"latest revocations (s, grant): {late[-5:]}"

    assert requests.get(webs[other].url + "/healthz", timeout=5).status_code == 200
    assert _leader_node() == f"scheduler@{other}"
    for node in (f"scheduler@{leader}", killed_worker):
        wait_for(lambda node=node: Notification.objects.filter(event="engine.process_dead",
                                                               subject__contains=f" {node} ").exists(),
                 timeout=30, message=f"the death of {node} alerted")
    wait_for(lambda: sum("stopped reporting" in m.get("title", "") for m in alert_sink.messages) >= 2, timeout=30,
             message="both deaths at the security channel's webhook")
