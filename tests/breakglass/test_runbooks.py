"""Runbooks: the shipped files load, front matter is checked with line numbers, step ids are
stable, untrusted Markdown never yields script, and the loader and command behave."""
import hashlib
import io
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jitad.breakglass.management.commands.jitad_runbooks import Command
from jitad.breakglass.runbooks import (
    Runbook,
    RunbookError,
    RunbookSet,
    Step,
    runbook_get,
    runbook_parse,
    runbooks_for,
    runbooks_load,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "runbooks"
HEADER = '---\ntitle: Test runbook\napplies-to: ["bg-da-*"]\nseverity: high\n---\n'


def doc(body: str = "- [ ] Do the thing.\n", header: str = HEADER) -> str:
    return header + body


@pytest.fixture
def rbdir(tmp_path, settings):
    """An empty runbook directory that settings.JITAD_RUNBOOK_DIR points at."""
    directory = tmp_path / "runbooks"
    directory.mkdir()
    settings.JITAD_RUNBOOK_DIR = directory
    return directory


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --- The shipped runbooks ----------------------------------------------------------------


def test_shipped_runbooks_load_without_errors():
    loaded = runbooks_load(SHIPPED)
    assert isinstance(loaded, RunbookSet)
    assert loaded.errors == {}
    assert {"dc-outage", "ransomware-containment", "portal-down", "lost-mfa-approver"} <= set(loaded.runbooks)
    assert "readme" not in loaded.runbooks and "README" not in loaded.runbooks
    for slug, rb in loaded.runbooks.items():
        assert isinstance(rb, Runbook) and rb.slug == slug
        assert rb.title and rb.severity in ("low", "medium", "high", "critical")
        assert rb.applies_to and any(rb.applies(name) for name in ("bg-da-01", "bg-dc-01"))
        assert 5 <= len(rb.steps) <= 60, slug
        assert [s.number for s in rb.steps] == list(range(1, len(rb.steps) + 1))
        assert len({s.id for s in rb.steps}) == len(rb.steps)
        assert all(len(s.text) <= 500 and s.html for s in rb.steps)
        assert rb.digest == hashlib.sha256((SHIPPED / f"{slug}.md").read_bytes()).hexdigest()


def test_shipped_runbooks_say_what_the_brief_asks():
    loaded = runbooks_load(SHIPPED)
    texts = {slug: " ".join(s.text for s in rb.steps) for slug, rb in loaded.runbooks.items()}
    assert "repadmin /replsummary" in texts["dc-outage"] and "w32tm /query /status" in texts["dc-outage"]
    assert "ntdsutil" in texts["dc-outage"] and "snapshot" in texts["dc-outage"]
    assert "krbtgt" in texts["ransomware-containment"] and "Do not power off" in texts["ransomware-containment"]
    assert "jitad_breakglass_envelope verify <account> <seal-id> --opened" in texts["portal-down"]
    assert "/account/mfa/enrol/" in texts["lost-mfa-approver"]
    assert loaded.runbooks["portal-down"].applies("anything-at-all")


# --- Sanitising ---------------------------------------------------------------------------

HOSTILE = """
Intro <script>alert(1)</script> text with <img src=x onerror=alert(2)>.

<script>
document.cookie = 'stolen';
</script>

<iframe src="https://evil.example/frame">framed</iframe>

<style>body { display: none }</style>

<div onclick="alert(3)">raw div</div>

[bad link](javascript:alert(4)) and <a href="javascript:alert(5)">raw link</a>
and [data link](data:text/html;base64,PHNjcmlwdD4=) and [vb](vbscript:msgbox) and <a href="JaVaScRiPt:alert(6)">x</a>

**bold prose** and `a <script> in code` and [good](https://example.org/docs "Docs").

| Role | Holder |
|:-----|-------:|
| PDC  | `DC01` |

## Contain
- [ ] Step with <script>alert(7)</script> and <img src=x onerror=alert(8)> inside.
- [ ] Step with [evil](javascript:alert(9)) and <b onmouseover="alert(10)">raw bold</b>.
- [ ] Step with **bold**, `Get-ADUser x`, *emphasis* and [docs](https://learn.microsoft.com/).
- [ ] <iframe src="https://evil.example/"></iframe><style>p{}</style>Step after junk.
"""

DANGEROUS = ["<script", "alert(", "onerror", "onclick", "onmouseover", "<iframe", "javascript:", "vbscript:",
             "data:text", "<style", "display: none", "<img", "<div", "document.cookie", "style=", "evil.example"]
ALLOWED_TAGS = {"p", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "code", "pre", "blockquote",
                "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "br"}


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser would see them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_inert(html: str) -> None:
    """Only allowlisted tags; attributes only on links, with a safe scheme and rel."""
    parser = _Tags()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, (tag, html)
        if tag != "a":
            assert attrs == {}, (tag, attrs)
            continue
        assert set(attrs) <= {"href", "title", "rel"}, attrs
        assert attrs["rel"] == "noopener noreferrer nofollow"
        assert "href" not in attrs or re.match(r"(https?|mailto):", attrs["href"]), attrs


def all_html(rb: Runbook) -> list[str]:
    return [b if kind == "html" else b.html for kind, b in rb.blocks]


def test_dangerous_markup_is_stripped_everywhere():
    rb = runbook_parse(doc(HOSTILE), slug="hostile")
    for html in all_html(rb):
        assert_inert(html)
        for bad in DANGEROUS:
            assert bad not in html, (bad, html)
    assert len(rb.steps) == 4


@pytest.mark.parametrize("markup", [
    "<img src=x onerror=\"alert('q')\">",
    "<img src=x onerror=alert('q')>",
    "<svg onload=alert(1)>",
    "<a href='java&#115;cript:alert(1)'>x</a>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "<!-- comment --><object data=x></object><embed src=x><form action=x><input></form>",
])
def test_odd_markup_is_stripped_or_escaped_never_live(markup):
    rb = runbook_parse(doc(f"{markup}\n\n- [ ] Step {markup} end.\n"), slug="odd")
    for html in all_html(rb):
        assert_inert(html)
        # Tag-like text Markdown does not take for HTML is escaped: visible, not live.
        for tag in ("<img", "<svg", "<math", "<object", "<embed", "<form", "<input", "<!--"):
            assert tag not in html


def test_benign_markdown_survives():
    rb = runbook_parse(doc(HOSTILE), slug="hostile")
    prose = "".join(b for kind, b in rb.blocks if kind == "html")
    assert "<strong>bold prose</strong>" in prose
    assert "<code>a &lt;script&gt; in code</code>" in prose
    assert '<a href="https://example.org/docs" title="Docs" rel="noopener noreferrer nofollow">good</a>' in prose
    assert "<table>" in prose and "<th>Role</th>" in prose and "<td><code>DC01</code></td>" in prose
    assert "<h3>Contain</h3>" in prose  # headings go one level down under the page's own
    assert "raw link" in prose and "raw div" in prose  # the words stay, the markup goes
    step = rb.steps[2]
    assert step.html == ('Step with <strong>bold</strong>, <code>Get-ADUser x</code>, <em>emphasis</em> and '
                         '<a href="https://learn.microsoft.com/" rel="noopener noreferrer nofollow">docs</a>.')
    assert rb.steps[1].html.endswith("raw bold.") and "<a" in rb.steps[1].html and "href" not in rb.steps[1].html
    assert rb.steps[3].html == "Step after junk."
    # The audit text keeps the source as written, whatever the page shows.
    assert rb.steps[0].text.startswith("Step with <script>")


def test_step_html_has_no_wrapping_paragraph():
    rb = runbook_parse(doc("- [ ] Run `dcdiag /v`.\n"), slug="x")
    assert rb.steps[0].html == "Run <code>dcdiag /v</code>."


# --- Steps ---------------------------------------------------------------------------------


def test_step_ids_follow_the_spec():
    rb = runbook_parse(doc("- [ ]   Check   time  sync.\n* [x] Second step.\n"), slug="x")
    first, second = rb.steps
    assert first.text == "Check time sync."
    assert first.id == "s" + hashlib.sha256(b"Check time sync.").hexdigest()[:10]
    assert re.fullmatch(r"s[0-9a-f]{10}", second.id) and second.number == 2
    assert [kind for kind, _ in rb.blocks] == ["step", "step"]
    assert all(isinstance(b, Step) for _, b in rb.blocks)


def test_step_ids_are_stable_across_reloads_and_unrelated_edits(rbdir):
    original = doc("Intro.\n\n- [ ] Alpha step.\n- [ ] Beta step.\n- [ ] Gamma step.\n")
    path = write(rbdir, "stable.md", original)
    before = {s.text: s.id for s in runbooks_load().runbooks["stable"].steps}
    assert before == {s.text: s.id for s in runbook_parse(original, slug="stable").steps}

    edited = doc("Different intro, longer.\n\n## New section\n- [ ] A new first step.\n- [ ] Alpha step.\n"
                 "- [ ] Beta step, reworded.\n\nMore prose.\n\n- [x] Gamma   step.\n",
                 header=HEADER.replace("Test runbook", "Renamed"))
    path.write_text(edited, encoding="utf-8")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    after = {s.text: s for s in runbooks_load().runbooks["stable"].steps}
    assert after["Alpha step."].id == before["Alpha step."]
    assert after["Gamma step."].id == before["Gamma step."]
    assert after["Beta step, reworded."].id != before["Beta step."]
    assert after["Alpha step."].number == 2


def test_duplicate_step_texts_get_distinct_ids():
    rb = runbook_parse(doc("- [ ] Reboot.\n- [ ] Check.\n- [ ]  Reboot.\n- [ ] Reboot.\n"), slug="x")
    ids = [s.id for s in rb.steps]
    base = "s" + hashlib.sha256(b"Reboot.").hexdigest()[:10]
    assert ids[0] == base and ids[2] == base + "-2" and ids[3] == base + "-3"
    assert len(set(ids)) == 4


def test_indented_continuation_joins_the_step_and_fences_hold_no_steps():
    body = ("- [ ] A long step that is\n  wrapped onto a second line.\nProse right after.\n\n"
            "```\n- [ ] not a step, just an example\n```\n\n- [ ] Real step.\n")
    rb = runbook_parse(doc(body), slug="x")
    assert [s.text for s in rb.steps] == ["A long step that is wrapped onto a second line.", "Real step."]
    prose = "".join(b for kind, b in rb.blocks if kind == "html")
    assert "Prose right after." in prose and "- [ ] not a step, just an example" in prose


def test_empty_step_is_refused():
    with pytest.raises(RunbookError, match=r"x\.md line 7: step has no text"):
        runbook_parse(doc("- [ ] ok\n- [ ]    \n"), slug="x")


def test_step_longer_than_500_characters_is_refused():
    with pytest.raises(RunbookError, match=r"x\.md line 6: step is 501 characters"):
        runbook_parse(doc("- [ ] " + "a" * 501 + "\n"), slug="x")


# --- Front matter ----------------------------------------------------------------------------

BAD = [
    ("# No header\n- [ ] x\n", r"line 1: front matter missing"),
    ('---\ntitle: T\napplies-to: ["*"]\nseverity: low\n- [ ] x\n', r"line 1: front matter is not closed"),
    ('---\ntitle: T\napplies-to: ["*"\nseverity: low\n---\n- [ ] x\n', r"line \d: front matter is not valid YAML"),
    ("---\n- just\n- a list\n---\n- [ ] x\n", r"line 2: front matter must be a mapping"),
    ("---\n---\n- [ ] x\n", r"line 2: front matter must be a mapping"),
    ('---\ntitle: T\napplies-to: ["*"]\nowner: me\nseverity: low\n---\n- [ ] x\n', r"line 4: .*unknown key 'owner'"),
    ('---\napplies-to: ["*"]\nseverity: low\n---\n- [ ] x\n', r"line 1: front matter 'title' is missing"),
    ('---\ntitle: "  "\napplies-to: ["*"]\nseverity: low\n---\n- [ ] x\n', r"line 2: front matter 'title'"),
    ('---\ntitle: ' + "t" * 201 + '\napplies-to: ["*"]\nseverity: low\n---\n- [ ] x\n', r"line 2: .*longer than 200"),
    ("---\ntitle: T\nseverity: low\n---\n- [ ] x\n", r"line 1: front matter 'applies-to' is missing"),
    ('---\ntitle: T\nseverity: low\napplies-to: [""]\n---\n- [ ] x\n', r"line 4: front matter 'applies-to'"),
    ("---\ntitle: T\nseverity: low\napplies-to: [1, 2]\n---\n- [ ] x\n", r"line 4: front matter 'applies-to'"),
    ("---\ntitle: T\nseverity: low\napplies-to: {a: b}\n---\n- [ ] x\n", r"line 4: front matter 'applies-to'"),
    ("---\ntitle: T\nseverity: low\napplies-to: [*]\n---\n- [ ] x\n", r"line 4: front matter is not valid YAML.*quote"),
    ('---\ntitle: T\napplies-to: ["*"]\nseverity: urgent\n---\n- [ ] x\n', r"line 4: front matter 'severity'"),
    ('---\ntitle: T\napplies-to: ["*"]\n---\n- [ ] x\n', r"line 1: front matter 'severity'"),
    ('---\ntitle: T\napplies-to: ["*"]\nseverity: low\nscenarios: [Not A Slug]\n---\n- [ ] x\n',
     r"line 5: front matter 'scenarios'"),
    ('---\ntitle: T\napplies-to: ["*"]\nseverity: low\n---\nProse only.\n- a list item\n', r"line 6: no steps"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_runbooks_raise_with_a_line_number(text, message):
    with pytest.raises(RunbookError, match=r"^bad\.md " + message):
        runbook_parse(text, slug="bad")


def test_lenient_front_matter_forms():
    rb = runbook_parse('---\ntitle: "  Spaced   title "\napplies-to: bg-x-*\nseverity: Critical\n'
                       "scenarios: dc-outage\n---\n- [ ] x\n", slug="ok")
    assert (rb.title, rb.applies_to, rb.severity, rb.scenarios) == ("Spaced title", ("bg-x-*",), "critical",
                                                                     ("dc-outage",))
    assert runbook_parse("\ufeff" + doc().replace("\n", "\r\n"), slug="crlf").steps[0].text == "Do the thing."


def test_one_bad_file_does_not_stop_the_others(rbdir):
    write(rbdir, "good.md", doc())
    write(rbdir, "broken.md", '---\ntitle: T\napplies-to: ["*"]\nseverity: nope\n---\n- [ ] x\n')
    write(rbdir, "Bad Name.md", doc())
    (rbdir / "latin1.md").write_bytes(doc("- [ ] caf\xe9\n").encode("latin-1"))
    write(rbdir, "README.md", "# Not a runbook\n")
    write(rbdir, "notes.txt", "ignored")
    loaded = runbooks_load()
    assert list(loaded.runbooks) == ["good"]
    assert set(loaded.errors) == {"broken.md", "Bad Name.md", "latin1.md"}
    assert loaded.errors["broken.md"].startswith("broken.md line 4: front matter 'severity'")
    assert "UTF-8" in loaded.errors["latin1.md"]


def test_missing_directory_is_an_error_not_an_exception(tmp_path):
    loaded = runbooks_load(tmp_path / "nowhere")
    assert loaded.runbooks == {} and len(loaded.errors) == 1


# --- Lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["../settings", "..%2fsettings", "..", "/etc/passwd", "DC-OUTAGE", "Dc-outage", "",
                                  "dc-outage/", "dc-outage\n", "dc-outage.md", "-dc", "a" * 65, None, 5])
def test_runbook_get_refuses_anything_but_a_slug(rbdir, slug):
    write(rbdir, "dc-outage.md", doc())
    (rbdir.parent / "settings.md").write_text(doc(), encoding="utf-8")
    assert runbook_get(slug) is None


def test_runbook_get_finds_a_runbook(rbdir):
    write(rbdir, "dc-outage.md", doc())
    assert runbook_get("dc-outage").title == "Test runbook"
    assert runbook_get("missing") is None


def test_applies_matches_globs_without_regard_to_case(rbdir):
    rb = runbook_parse(doc(header=HEADER.replace('["bg-da-*"]', '["bg-DA-*", "BG-dc-0?", "exact-name"]')), slug="x")
    assert rb.applies("bg-da-01") and rb.applies("BG-DA-EMERGENCY") and rb.applies("bg-dc-07")
    assert rb.applies("EXACT-NAME")
    assert not rb.applies("bg-dc-10") and not rb.applies("xbg-da-01") and not rb.applies("bg-ex-01")
    assert not rb.applies("") and not rb.applies(None)

    write(rbdir, "da.md", doc())
    write(rbdir, "all.md", doc(header=HEADER.replace('["bg-da-*"]', '"*"').replace("high", "critical")))
    assert [rb.slug for rb in runbooks_for("BG-DA-01")] == ["all", "da"]
    assert [rb.slug for rb in runbooks_for("svc-backup")] == ["all"]


def test_runbooks_sorted_by_severity_then_title(rbdir):
    for slug, title, severity in [("a", "Zulu", "low"), ("b", "Alpha", "critical"), ("c", "Beta", "critical"),
                                  ("d", "Mid", "medium"), ("e", "High one", "high")]:
        write(rbdir, f"{slug}.md", doc(header=HEADER.replace("Test runbook", title).replace("high", severity)))
    assert list(runbooks_load().runbooks) == ["b", "c", "e", "d", "a"]


# --- Cache ----------------------------------------------------------------------------------


def test_cache_reuses_unchanged_files_and_sees_edits(rbdir):
    path = write(rbdir, "edit-me.md", doc())
    first = runbooks_load()
    assert runbooks_load() is first
    path.write_text(doc("- [ ] A different step now.\n", header=HEADER.replace("Test runbook", "Edited")),
                    encoding="utf-8")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    second = runbooks_load()
    assert second is not first
    assert second.runbooks["edit-me"].title == "Edited"
    assert second.runbooks["edit-me"].steps[0].text == "A different step now."
    assert second.runbooks["edit-me"].digest == hashlib.sha256(path.read_bytes()).hexdigest()

    write(rbdir, "new-one.md", doc())
    assert set(runbooks_load().runbooks) == {"edit-me", "new-one"}
    (rbdir / "new-one.md").unlink()
    assert set(runbooks_load().runbooks) == {"edit-me"}


def test_cache_sees_an_edit_that_keeps_the_size(rbdir):
    path = write(rbdir, "same-size.md", doc("- [ ] Step AAAA.\n"))
    assert runbooks_load().runbooks["same-size"].steps[0].text == "Step AAAA."
    before = path.stat()
    path.write_text(doc("- [ ] Step BBBB.\n"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert path.stat().st_size == before.st_size
    assert runbooks_load().runbooks["same-size"].steps[0].text == "Step BBBB."


# --- Command --------------------------------------------------------------------------------


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(Command(), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_lists_and_check_passes_on_good_files(rbdir):
    for path in SHIPPED.glob("*.md"):
        shutil.copy(path, rbdir / path.name)
    out, err = run("--check")
    assert "dc-outage" in out and "critical" in out and "bg-da-*" in out and "4 runbook(s)" in out
    assert err == ""
    data = json.loads(run("--format", "json")[0])
    assert {r["slug"] for r in data["runbooks"]} == {"dc-outage", "ransomware-containment", "portal-down",
                                                      "lost-mfa-approver"}
    assert data["errors"] == {}


def test_command_check_fails_on_a_bad_file(rbdir):
    write(rbdir, "good.md", doc())
    write(rbdir, "bad.md", "no front matter\n- [ ] x\n")
    out, err = run()  # without --check: report, exit 0
    assert "good" in out and "bad.md line 1" in err
    with pytest.raises(CommandError, match="1 runbook file"):
        run("--check")
    with pytest.raises(CommandError):
        run("--check", "--format", "json")
    (rbdir / "bad.md").unlink()
    run("--check")
