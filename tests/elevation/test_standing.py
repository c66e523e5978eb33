"""The standing-admin scan: servers' local Administrators read over WinRM, judged against AD and the allow-list."""
import json
import uuid

import pytest

from jitad.audit.models import AuditEvent
from jitad.elevation import services, tasks
from jitad.elevation.models import HostScan, StandingAdmin
from tests.support.waiting import wait_for

from .helpers import ad_sid, local_admin_entry

pytestmark = pytest.mark.django_db(transaction=True)


def _domain_sid(ldap_admin, samba_dc) -> str:
    return ad_sid(ldap_admin, samba_dc.base_dn)


@pytest.fixture
def server(make_host, make_target, ldap_admin, samba_dc, make_user):
    """A server whose local Administrators holds: its own Administrator (allowed by *-500), its JIT group,
    Domain Admins, a user put there by hand, and the SID of an account deleted long ago (orphaned)."""
    domain = _domain_sid(ldap_admin, samba_dc)
    host = make_host(name="SRV-SCAN")
    target = make_target(winrm_url=host.url)
    bob = make_user("bob")
    from jitad import directory

    with directory.connect() as d:
        bob_ad = d.find_user(bob.username)
    jit_name = target.group_dn.split(",", 1)[0].split("=", 1)[1]
    host.admins[:] = [
        local_admin_entry("S-1-5-21-111-222-333-500", "WinNT://JITAD/SRV-SCAN/Administrator", "User"),
        local_admin_entry(ad_sid(ldap_admin, target.group_dn), f"WinNT://JITAD/{jit_name}"),
        local_admin_entry(f"{domain}-512", "WinNT://JITAD/Domain Admins"),
        local_admin_entry(bob_ad.sid, f"WinNT://JITAD/{bob.username}", "User"),
        local_admin_entry(f"{domain}-987654", f"WinNT://{domain}-987654", ""),
    ]
    return host, target, bob_ad, domain


def test_scan_reports_standing_admins_and_survives_an_orphaned_sid(server, live, alert_sink):
    """GIVEN that server WHEN it is scanned THEN Domain Admins, bob and the orphaned SID are standing admins
    (named from AD where they resolve), the JIT group and the built-in Administrator are not, and it is alerted."""
    host, target, bob_ad, domain = server
    alert_sink.clear()
    scan = services.host_scan(target=target)
    assert scan.ok and scan.members == 5 and scan.standing == 3
    found = {f.sid: f for f in StandingAdmin.objects.filter(target=target, resolved_at__isnull=True)}
    assert set(found) == {f"{domain}-512", bob_ad.sid, f"{domain}-987654"}
    assert found[f"{domain}-512"].name == "Domain Admins" and found[f"{domain}-512"].is_group
    assert found[bob_ad.sid].name == bob_ad.sam_account_name and not found[bob_ad.sid].is_group
    assert found[f"{domain}-987654"].orphaned and found[f"{domain}-987654"].name == f"{domain}-987654"
    wait_for(lambda: any(f"Standing admins on {target.name}: 3 new" in m.get("title", "") for m in alert_sink.messages),
             timeout=20, message="the standing-admin alert")
    assert AuditEvent.objects.filter(action="host.standing_admin_found", object_id=str(target.pk)).count() == 3


def test_allow_list_and_resolution(server, settings):
    """GIVEN Domain Admins is allow-listed on the target WHEN bob is taken out of the group and the server
    is scanned again THEN only the orphaned SID remains open; bob's finding is resolved, not deleted."""
    host, target, bob_ad, domain = server
    services.host_scan(target=target)
    target.allowed_admins = ["*-512"]
    target.save()
    with host.lock:
        host.admins[:] = [m for m in host.admins if m["sid"] != bob_ad.sid]
    scan = services.host_scan(target=target)
    assert scan.standing == 1
    open_ = StandingAdmin.objects.filter(target=target, resolved_at__isnull=True)
    assert list(open_.values_list("sid", flat=True)) == [f"{domain}-987654"]
    assert StandingAdmin.objects.get(target=target, sid=bob_ad.sid).resolved_at is not None
    assert AuditEvent.objects.filter(action="host.standing_admin_gone", object_id=str(target.pk)).count() == 2


def test_a_server_that_cannot_be_scanned_is_a_failed_scan_alerted_once(server, live, alert_sink):
    host, target, _bob, _domain = server
    host.fail = "refuse_auth"
    alert_sink.clear()
    first = services.host_scan(target=target)
    second = services.host_scan(target=target)
    assert not first.ok and "refused jitad's credentials" in first.error and not second.ok
    wait_for(lambda: any(f"Cannot scan {target.name}" in m.get("title", "") for m in alert_sink.messages), timeout=20,
             message="the scan failure alert")
    assert sum(f"Cannot scan {target.name}" in m.get("title", "") for m in alert_sink.messages) == 1


def test_the_periodic_task_scans_through_the_worker(server, live):
    """GIVEN the beat entry's task WHEN the real worker runs it THEN each server is scanned by a task of its own."""
    _host, target, _bob, _domain = server
    tasks.hosts_scan.delay()
    scan = wait_for(lambda: HostScan.objects.filter(target=target, finished_at__isnull=False).first(), timeout=30,
                    message="a scan by the worker")
    assert scan.ok and scan.standing == 3


def test_report_command(server, capsys):
    from django.core.management import CommandError, call_command

    _host, target, bob_ad, _domain = server
    with pytest.raises(CommandError) as e:
        call_command("jitad_standing_admins", "--scan", "--target", target.name)
    assert e.value.returncode == 3 and "3 standing admin(s) on 1 server(s)" in str(e.value)
    out = capsys.readouterr().out
    assert bob_ad.sam_account_name in out and "(orphaned SID)" in out


def test_report_warns_of_every_server_still_reached_over_ntlm(make_target, capsys):
    """GIVEN one server reached over NTLM (its profile allows it) and one over Kerberos WHEN the report runs,
    in any format THEN a warning names the NTLM one, on stderr, and not the other; the JSON document lists it."""
    from django.core.management import call_command

    ntlm = make_target(winrm_url="http://127.0.0.1:9/wsman", winrm_transport="ntlm")
    krb = make_target(winrm_url="http://127.0.0.1:9/wsman", winrm_transport="kerberos", hostname="srv.jitad.test")
    for fmt in ("text", "json"):
        call_command("jitad_standing_admins", "--format", fmt)
        out, err = capsys.readouterr()
        assert f"warning: {ntlm.name} is reached over NTLM (WinRM profile default allows it)" in err
        assert krb.name not in err and "NTLM" not in out
    assert json.loads(out)["ntlm_targets"] == [{"target": ntlm.name, "profile": "default"}]
    krb.winrm_transport = "ntlm"
    krb.save()
    call_command("jitad_standing_admins", "--target", krb.name)
    err = capsys.readouterr().err
    assert f"warning: {krb.name} is reached over NTLM" in err and ntlm.name not in err
    # what to do, for this server: Kerberos, by the name AD must know, then the setting that allows NTLM goes
    assert ("Switch the target to Kerberos (transport: kerberos in its winrm policy, or its WinRM transport in the "
            "admin), with HTTP/srv.jitad.test known to AD") in err
    assert "unset JITAD_WINRM_ALLOW_NTLM (ops/README.md, Kerberos)" in err


def test_a_jit_group_nested_in_a_server_admins_group_counts_as_jit_not_standing(make_host, make_target, make_user,
                                                                                 ldap_admin, samba_dc):
    """GIVEN a server whose local Administrators holds three domain groups outside the JIT OU: a carrier
    ("Admins, <server>", with an escaped comma) holding the JIT group through a group in between, a mixed
    group holding the JIT group and a person, and an empty group WHEN it is scanned THEN only the carrier is
    not standing; WHEN someone puts a person in the group in between THEN the carrier is standing too."""
    from jitad import directory

    host = make_host(name="SRV-NEST")
    target = make_target(winrm_url=host.url)
    bob = make_user("bob")
    tag = uuid.uuid4().hex[:6]
    parent = f"OU=ServerGroups-{tag},{samba_dc.base_dn}"
    with directory.connect() as d:
        bob_dn = d.find_user(bob.username).dn
        d.ensure_ou(parent)
        carrier = d.ensure_group(f"Admins, SRV-NEST {tag}", parent)
        between = d.ensure_group(f"Between-{tag}", parent)
        mixed = d.ensure_group(f"Mixed-{tag}", parent)
        empty = d.ensure_group(f"Empty-{tag}", parent)
        d.ensure_member(carrier, between)
        d.ensure_member(between, target.group_dn)
        d.ensure_member(mixed, target.group_dn)
        d.ensure_member(mixed, bob_dn)
    sids = {name: ad_sid(ldap_admin, dn) for name, dn in (("carrier", carrier), ("mixed", mixed), ("empty", empty))}
    host.admins[:] = [local_admin_entry(sid, f"WinNT://JITAD/{name}") for name, sid in sids.items()]

    scan = services.host_scan(target=target)
    assert scan.ok and scan.members == 3 and scan.standing == 2
    open_ = set(StandingAdmin.objects.filter(target=target, resolved_at__isnull=True).values_list("sid", flat=True))
    assert open_ == {sids["mixed"], sids["empty"]}

    with directory.connect() as d:
        d.ensure_member(between, bob_dn)
    scan = services.host_scan(target=target)
    assert scan.standing == 3
    assert sids["carrier"] in set(StandingAdmin.objects.filter(target=target, resolved_at__isnull=True)
                                  .values_list("sid", flat=True))
