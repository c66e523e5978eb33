"""The reconciler's first reading of a managed group becomes the right's standing baseline (real Samba DC)."""
from django.utils import timezone

from jitad.elevation import services
from jitad.reports.models import RightBaseline
from jitad.reports.selectors.kpis import report_build
from tests.elevation.test_held_removals import _add_by_hand


def test_first_reading_is_the_baseline_and_later_runs_keep_it(live, make_target, ldap_admin, jit_ou):
    """GIVEN a JIT group with two members added outside jitad
    WHEN the reconciler reads it (removing them), then reads it again
    THEN the baseline keeps the first reading (2 members, 2 unbacked) and the report shows 2 → 0, a 100 % reduction."""
    start = timezone.now()
    target = make_target()
    extra = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 2)
    assert sorted(services.reconcile()[target.group_dn]) == sorted(extra)
    services.reconcile()
    base = RightBaseline.objects.get(group_dn__iexact=target.group_dn)
    assert (base.target, base.first_reading_members, base.first_reading_unbacked) == (target, 2, 2)
    report = report_build(start=start, end=timezone.now(), target=target.name)
    assert [report.figure("standing", k).value for k in ("baseline", "now", "reduction_pct")] == [2, 0, 100.0]
