"""manage.py jitad_pam_document: what it states from live configuration, its three formats, and that it passes
its own validator with and without --evidence on rows like the demo's (database only: no DC or worker)."""
import re
import zlib
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.elevation.models import Target
from jitad.audit.models import AuditEvent, SiemCursor
from jitad.reports.selectors.kpis import report_build
from jitad.settings.siem import _destinations as siem_settings

from .pamdoc_world import demo_world, run_validate, write_document

pytestmark = pytest.mark.usefixtures("db")


def pdf_text(data: bytes) -> str:
    """The text drawn on a PDF's pages (fpdf2 deflates each content stream)."""
    parts = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            parts.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            parts.append(stream.decode("latin-1"))
    return "".join(re.findall(r"\((.*?)(?<!\\)\)\s*Tj", "".join(parts))) + "".join(
        re.findall(r"\((.*?)(?<!\\)\)", "".join(parts)))


@pytest.fixture
def world():
    return demo_world()


def test_the_document_states_the_live_configuration(world, tmp_path):
    text = write_document(tmp_path / "pam.md").decode()
    assert "| SQL01 | Server | T1 | sql01.jitad.test |" in text
    assert "Domain Admins (JIT) | Domain role | T0" in text
    assert "| domain-admins |" in text and "2 approval(s) from Tier0-Approvers, Security-Managers" in text
    assert "no grant lasts longer than 240 minutes (4 h)" in text
    assert "Automatic approval: policies low-risk-servers" in text and "1 of 2 approved requests" in text
    assert "No standing privilege: the standing-admin scans found no standing admins" in text
    assert "younger than 900 seconds (15 minutes)" in text
    assert "The records confirm MFA for 100% of privileged sessions in the period: all 3 privileged steps" in text
    assert "Policies sql-admins end the user's sessions" in text
    assert "| bg-da-01 | Sealed | 2 | allowed | 240 min | dc-outage, ransomware-containment, portal-down, lost-mfa-approver |" in text
    assert "No break-glass checkout was made in the period." in text
    assert "| portal-down |" in text
    assert re.search(r"The chain holds \d+ events and is intact\.", text)


def test_the_generated_document_passes_its_own_validator_with_and_without_evidence(world, tmp_path):
    """GIVEN rows like the demo's WHEN the document is written and validated THEN PASS as text, and every claim
    it makes holds against the records of its period."""
    path = tmp_path / "pam.md"
    write_document(path)
    code, report = run_validate(path)
    assert code == 0 and report.rstrip().endswith("Result: PASS"), report
    code, report = run_validate(path, "--evidence")
    assert code == 0 and report.rstrip().endswith("Result: PASS"), report
    for claim in ("maximum duration 240 min", "MFA for every privileged session", "no standing privilege",
                  "policy sql-admins: at most 180 min"):
        assert re.search(rf"\[holds\]\s+line \d+: {re.escape(claim)}", report), (claim, report)
    assert "[contradicted]" not in report


def test_html_passes_too_and_escapes_every_value(world, tmp_path):
    Target.objects.filter(pk=world["srv"].pk).update(description="x", hostname='<script>alert("x")</script>')
    html = write_document(tmp_path / "pam.html", "html").decode()
    assert html.startswith("<!DOCTYPE html>") and "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "src=" not in html and "href=" not in html  # self-contained
    code, report = run_validate(tmp_path / "pam.html", "--evidence")
    assert code == 0 and report.rstrip().endswith("Result: PASS"), report


def test_pdf_is_a_pdf_with_the_text(world, tmp_path):
    data = write_document(tmp_path / "pam.pdf", "pdf")
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    assert "Just-in-time privileged access: jitad" in text
    assert "MFA is enforced on every privileged session" in text
    assert "sql-admins" in text


def test_a_pdf_needs_an_output_file_and_a_bad_period_is_refused(world):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="needs --output"):
        call_command("jitad_pam_document", "--format", "pdf")
    with pytest.raises(CommandError, match="is not a period such as 30d.*date range") as e:
        call_command("jitad_pam_document", "--period", "last week")
    assert e.value.returncode == 2


def test_kpis_and_siem_are_quoted_from_their_selectors(world, tmp_path, settings):
    """GIVEN the period's KPI report and a configured SIEM destination part-way through the chain WHEN the document
    is written THEN it quotes the KPI figures (saying the revocation rate is unknown while no grant has ended) and the
    destination's lag."""
    settings.JITAD_SIEM_DESTINATIONS = siem_settings({"JITAD_SIEM_SOC_URL": "syslog+tls://siem.example:6514",
                                                      "JITAD_SIEM_SOC_FORMAT": "cef"})
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert head and head > 2
    SiemCursor.objects.create(name="soc", last_seq=head - 2, last_sent_at=timezone.now())
    now = timezone.now()
    report = report_build(start=now - timedelta(days=30), end=now)
    assert report.figure("revocation", "on_time_pct").value is None  # no grant of the demo rows has ended yet
    auto = report.figure("approval", "auto_count")
    assert auto.value
    text = write_document(tmp_path / "pam.md").decode()
    assert "The measured revocation success rate is not available for the period: no grant ended in it." in text
    assert f"| {report.section('approval').title} | {auto.label} | {auto.value}{auto.unit} |" in text
    assert f"| soc | syslog | cef | siem.example:6514 | {head - 2} | {head} | 2 |" in text
