"""A broker outage never turns into a 500 or a lost grant: the sweep takes the grant once the broker is back.

The broker really is down here: a Redis of the test's own, stopped; or the embedded
broker's queue folder made unusable (tests run as root, for whom permissions stop nothing,
so a file takes the folder's place).
"""
import time

import requests

from jitad.accounts.services import api_token_create
from jitad.elevation import services
from jitad.elevation.models import Grant
from tests.conftest import ARTIFACTS
from tests.support.mfa import backup_codes
from tests.support.processes import RedisServer

from .helpers import ad_is_member, ad_user_dn, wait_state


def _token(user) -> str:
    return api_token_create(user=user, name="outage")[1]


def _approve_during_outage(web, req, approver) -> requests.Response:
    token, code = _token(approver), backup_codes(approver, 1)[0]
    return requests.post(f"{web.url}/api/v1/requests/{req.pk}/approve", json={"comment": "ok", "otp": code},
                         headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _waiting_request(make_user, make_target):
    target = make_target(mode="manual", approvals=1)
    alice = make_user("alice", groups=("admins",))
    bob = make_user("bob", groups=("approvers",))
    return target, alice, bob, services.request_create(requester=alice, target=target, duration_minutes=30)


def _assert_recorded_not_applied(req, target, ldap_admin, samba_dc, alice) -> Grant:
    req.refresh_from_db()
    assert req.state == "approved"
    grant = Grant.objects.get(request=req)
    # Handed back to the sweep at once (not left to lapse with a claim nobody will use).
    assert grant.state == Grant.State.GRANTING and grant.claim_token is None
    time.sleep(2)
    assert not ad_is_member(ldap_admin, target.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    return grant


def test_approving_while_redis_is_down_answers_and_the_grant_follows(nodes, make_user, make_target, ldap_admin,
                                                                    samba_dc, tmp_path):
    """GIVEN jitad (web server, engine worker with its scheduler) on a Redis of its own, and a
    request waiting for bob WHEN Redis is stopped and bob approves through the API THEN the
    answer is 200 as usual and the approval and its grant are recorded (nothing in AD yet)
    WHEN Redis is back THEN the sweep finds the grant and alice is added to the group."""
    redis = RedisServer(tmp_path / "redis", ARTIFACTS / "engine" / "redis.log").start()
    nodes.started.append(redis)
    env = nodes.env(CELERY_BROKER_URL=redis.url)
    nodes.worker(env, beat=True)
    web = nodes.web(env)
    target, alice, bob, req = _waiting_request(make_user, make_target)

    redis.stop()
    r = _approve_during_outage(web, req, bob)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    grant = _assert_recorded_not_applied(req, target, ldap_admin, samba_dc, alice)

    redis.start()
    active = wait_state(grant.id, Grant.State.ACTIVE, timeout=90)
    assert ad_is_member(ldap_admin, target.group_dn, active.user_dn)
    assert "broker unreachable" in web.log_text()


def test_approving_while_the_embedded_broker_is_unusable_answers_and_the_grant_follows(
        nodes, make_user, make_target, ldap_admin, samba_dc, tmp_path, settings):
    """GIVEN jitad on the embedded broker (a queue folder of its own) WHEN that folder is
    unusable and bob approves THEN the answer is 200 and nothing is lost WHEN the folder is
    back THEN the grant is applied."""
    var = tmp_path / "var"
    env = nodes.env(CELERY_BROKER_URL="jitadfs://", JITAD_VAR_DIR=str(var), JITAD_SECRET_KEY=settings.SECRET_KEY,
                    JITAD_VAULT_KEYS=",".join(settings.JITAD_VAULT_KEYS))
    nodes.worker(env, beat=True)
    web = nodes.web(env)
    target, alice, bob, req = _waiting_request(make_user, make_target)

    queue, away = var / "broker" / "queue", var / "broker" / "queue-away"
    queue.rename(away)
    queue.write_text("not a folder\n")
    try:
        r = _approve_during_outage(web, req, bob)
        assert r.status_code == 200, r.text
        grant = _assert_recorded_not_applied(req, target, ldap_admin, samba_dc, alice)
    finally:
        queue.unlink()
        away.rename(queue)
    active = wait_state(grant.id, Grant.State.ACTIVE, timeout=90)
    assert ad_is_member(ldap_admin, target.group_dn, active.user_dn)
