"""Rows like the demo's for the JIT PAM document tests: targets by tier, the example's three policies,
requests made and decided through the services with their MFA steps, a clean scan, a sealed account."""
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from jitad.accounts.mfa import MfaStep
from jitad.breakglass.models import SealedAccount
from jitad.elevation import services
from jitad.elevation.models import HostScan, Policy, Target
from tests.elevation.builders import policy, target, user


def step(method: str = "totp", seconds_ago: int = 60) -> MfaStep:
    return MfaStep(method=method, verified_at=timezone.now() - timedelta(seconds=seconds_ago))


def demo_world() -> dict:
    """SRV01 (auto, 4 h), SQL01 (one DBA lead, 3 h), Domain Admins (two distinct groups, 1 h)."""
    srv = target("SRV01", hostname="srv01.jitad.test")
    sql = target("SQL01", hostname="sql01.jitad.test")
    da = target("Domain Admins (JIT)", kind=Target.Kind.DOMAIN_ROLE, tier=Target.Tier.IDENTITY)
    policy(srv, name="low-risk-servers", approval_mode=Policy.ApprovalMode.AUTO, approvals_required=0,
           approver_groups=[], eligible_groups=["Server-Operators"], max_duration_minutes=240)
    policy(sql, name="sql-admins", eligible_groups=["DBAs"], approver_groups=["DBA-Leads"], max_duration_minutes=180,
           priority=50, end_sessions_on_revoke=True)
    policy(da, name="domain-admins", eligible_groups=["Tier0-Admins"], approvals_required=2, distinct_approver_groups=True,
           approver_groups=["Tier0-Approvers", "Security-Managers"], max_duration_minutes=60, default_duration_minutes=30,
           priority=10, max_extensions=0)
    alice = user("alice", "Server-Operators", "DBAs")
    bob = user("bob", "DBA-Leads")
    auto = services.request_create(requester=alice, target=srv, duration_minutes=60, mfa=step())
    manual = services.request_create(requester=alice, target=sql, duration_minutes=90, mfa=step("webauthn"))
    services.request_approve(request=manual, approver=bob, mfa=step("backup_code", 5))
    pending = services.request_create(requester=alice, target=sql, duration_minutes=30, mfa=step())
    now = timezone.now()
    for t in (srv, sql):
        HostScan.objects.create(target=t, started_at=now, finished_at=now, ok=True, members=2, standing=0)
    account = SealedAccount.objects.create(name="bg-da-01", state=SealedAccount.State.SEALED, seal_id="BG-TEST-0001",
                                           responder_groups=["BreakGlass-Responders"],
                                           approver_groups=["BreakGlass-Approvers"], approvals_required=2)
    return {"srv": srv, "sql": sql, "da": da, "alice": alice, "bob": bob, "auto": auto, "manual": manual,
            "pending": pending, "account": account}


def run_validate(*args) -> tuple[int, str]:
    """``jitad_pam_validate`` in this process (the test's database): its exit status and report."""
    from io import StringIO

    from django.core.management.base import CommandError

    out = StringIO()
    try:
        call_command("jitad_pam_validate", *[str(a) for a in args], stdout=out)
    except SystemExit as e:
        return int(e.code), out.getvalue()
    except CommandError as e:
        return e.returncode, str(e)
    return 0, out.getvalue()


def write_document(path, fmt: str = "md", *extra) -> bytes:
    call_command("jitad_pam_document", "--format", fmt, "--output", str(path), *extra)
    return path.read_bytes()
