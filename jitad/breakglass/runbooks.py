"""Break-glass runbooks: Markdown files with a YAML header, parsed into steps and safe HTML.

Runbooks live in ``settings.JITAD_RUNBOOK_DIR`` and anyone with write access to the
repository edits them, so nothing in them is trusted: every piece of HTML that leaves
this module went through ``nh3`` with a small allowlist (no scripts, no attributes but a
link's ``href`` and ``title``, no URL schemes but http, https and mailto).
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import markdown
import nh3
import yaml

SEVERITIES = ("critical", "high", "medium", "low")
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
STEP_RE = re.compile(r"^\s*[-*] \[[ xX]\] (.+)$")
STEP_TEXT_MAX = 500
TITLE_MAX = 200
# A runbook is a page of prose; anything much bigger is a mistake (or an attempt to make
# every portal page that lists runbooks slow).
FILE_MAX_BYTES = 256 * 1024
KEYS = ("title", "applies-to", "scenarios", "severity")

_MD_EXTENSIONS = ["tables", "fenced_code", "sane_lists"]
_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "code", "pre",
         "blockquote", "table", "thead", "tbody", "tr", "th", "td", "a", "hr", "br"}
# Tags whose content goes too, not just the tag: a script's text shown as prose is still noise.
_DROP_WITH_CONTENT = {"script", "style", "iframe", "noscript", "template", "object", "svg", "math"}
_FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING_RE = re.compile(r"<(/?)h([1-6])>")


class RunbookError(Exception):
    """A runbook file that cannot be used; the message names the file and line."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Step:
    """One tickable step; ``id`` depends only on its own text, ``text`` is the source for audit records."""

    id: str
    number: int
    html: str
    text: str


@dataclass(frozen=True)
class Runbook:
    """One parsed runbook; ``blocks`` are ("html", str) and ("step", Step) in file order."""

    slug: str
    title: str
    applies_to: tuple[str, ...]
    scenarios: tuple[str, ...]
    severity: str
    blocks: tuple[tuple[str, object], ...]
    steps: tuple[Step, ...]
    digest: str

    def applies(self, account_name: str) -> bool:
        """True if one of the applies-to globs matches the account name, ignoring case."""
        name = (account_name or "").strip().lower()
        return bool(name) and any(fnmatch.fnmatchcase(name, p.lower()) for p in self.applies_to)


@dataclass(frozen=True)
class RunbookSet:
    """Runbooks by slug (most severe first) and the files that failed, by file name. Shared: do not mutate."""

    runbooks: dict[str, Runbook]
    errors: dict[str, str]


# --- Rendering -------------------------------------------------------------------------


def _sanitise(html: str) -> str:
    clean = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    # The page around a runbook owns h1 (and the runbook's title is its h2), so headings go
    # one level down. After nh3 headings carry no attributes, so the pattern is exact.
    return _HEADING_RE.sub(lambda m: f"<{m.group(1)}h{min(int(m.group(2)) + 1, 6)}>", clean).strip()


def render_markdown(text: str) -> str:
    """Markdown to sanitised HTML; raw HTML in the source never survives."""
    return _sanitise(markdown.markdown(text, extensions=_MD_EXTENSIONS, output_format="html"))


def render_inline(text: str) -> str:
    """One step's Markdown to sanitised HTML without the wrapping paragraph."""
    html = render_markdown(text)
    # Unwrap after sanitising: stripped raw HTML can leave a lone paragraph behind, and nh3's
    # output is normalised, so a literal "<p>" here is always a real tag.
    if html.startswith("<p>") and html.endswith("</p>") and html.count("<p>") == 1:
        html = html[3:-4].strip()
    return html


# --- Parsing ---------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _key_line(header: list[str], key: str, first: int) -> int:
    """The file line where ``key`` is set in the header, for messages; the header's start if unknown."""
    pattern = re.compile(rf"^\s*['\"]?{re.escape(key)}['\"]?\s*:")
    for i, line in enumerate(header):
        if pattern.match(line):
            return first + i
    return first - 1


def _string_list(value, *, key: str, where: str, line: int, slugs: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise RunbookError(f"{where} line {line}: front matter '{key}' must be a non-empty list of strings", line=line)
    items = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise RunbookError(f"{where} line {line}: front matter '{key}' has an entry that is not a "
                               f"non-empty string ({item!r}); quote globs such as \"*\"", line=line)
        item = item.strip()
        if slugs and not SLUG_RE.fullmatch(item):
            raise RunbookError(f"{where} line {line}: front matter '{key}' entry {item!r} is not a slug "
                               "(lowercase letters, digits and hyphens)", line=line)
        items.append(item)
    return tuple(items)


def _front_matter(lines: list[str], where: str) -> tuple[dict, int]:
    """The validated header and the index of the first body line."""
    if not lines or lines[0].rstrip() != "---":
        raise RunbookError(f"{where} line 1: front matter missing: the file must start with a '---' line, "
                           "then title, applies-to and severity, then '---'", line=1)
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
    if end is None:
        raise RunbookError(f"{where} line 1: front matter is not closed (no second '---' line)", line=1)
    header = lines[1:end]
    try:
        data = yaml.safe_load("\n".join(header))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        hint = " (quote globs: \"*\", \"bg-*\")" if "alias" in str(e) or "anchor" in str(e) else ""
        raise RunbookError(f"{where} line {line}: front matter is not valid YAML: {problem}{hint}", line=line) from None
    if not isinstance(data, dict):
        raise RunbookError(f"{where} line 2: front matter must be a mapping with the keys "
                           f"{', '.join(KEYS)}", line=2)
    for key in data:
        if key not in KEYS:
            line = _key_line(header, str(key), 2)
            raise RunbookError(f"{where} line {line}: front matter has an unknown key {key!r} "
                               f"(known: {', '.join(KEYS)})", line=line)

    title = data.get("title")
    line = _key_line(header, "title", 2)
    if not isinstance(title, str) or not _normalise(title):
        raise RunbookError(f"{where} line {line}: front matter 'title' is missing or empty", line=line)
    title = _normalise(title)
    if len(title) > TITLE_MAX:
        raise RunbookError(f"{where} line {line}: front matter 'title' is longer than {TITLE_MAX} characters", line=line)

    line = _key_line(header, "applies-to", 2)
    if data.get("applies-to") is None:
        raise RunbookError(f"{where} line {line}: front matter 'applies-to' is missing: list the break-glass "
                           "account names or globs (\"bg-da-*\", \"*\")", line=line)
    applies_to = _string_list(data["applies-to"], key="applies-to", where=where, line=line)

    scenarios: tuple[str, ...] = ()
    if data.get("scenarios") is not None:
        line = _key_line(header, "scenarios", 2)
        scenarios = _string_list(data["scenarios"], key="scenarios", where=where, line=line, slugs=True)

    severity = data.get("severity")
    line = _key_line(header, "severity", 2)
    severity = severity.strip().lower() if isinstance(severity, str) else severity
    if severity not in SEVERITIES:
        raise RunbookError(f"{where} line {line}: front matter 'severity' must be one of "
                           f"{', '.join(SEVERITIES)} (got {data.get('severity')!r})", line=line)
    return {"title": title, "applies_to": applies_to, "scenarios": scenarios, "severity": severity}, end + 1


def _body(lines: list[str], start: int, where: str) -> list[tuple[str, object]]:
    """Split the body into prose chunks and step texts: [("prose", markdown) | ("step", text)]."""
    parts: list[tuple[str, object]] = []
    prose: list[str] = []
    fence = ""
    i = start
    while i < len(lines):
        line = lines[i]
        if fence:
            prose.append(line)
            closing = line.strip()
            if closing and set(closing) == {fence[0]} and len(closing) >= len(fence):
                fence = ""
            i += 1
            continue
        m = _FENCE_RE.match(line)
        if m:
            fence = m.group(1)
            prose.append(line)
            i += 1
            continue
        m = STEP_RE.match(line)
        if not m:
            prose.append(line)
            i += 1
            continue
        if "".join(prose).strip():
            parts.append(("prose", "\n".join(prose)))
        prose = []
        first_line = i + 1
        chunks = [m.group(1)]
        i += 1
        # Indented lines right after a step continue its text (a wrapped long line).
        while (i < len(lines) and lines[i][:1] in (" ", "\t") and lines[i].strip()
               and not STEP_RE.match(lines[i]) and not _FENCE_RE.match(lines[i])):
            chunks.append(lines[i])
            i += 1
        text = _normalise(" ".join(chunks))
        if not text:
            raise RunbookError(f"{where} line {first_line}: step has no text", line=first_line)
        if len(text) > STEP_TEXT_MAX:
            raise RunbookError(f"{where} line {first_line}: step is {len(text)} characters long; the limit is "
                               f"{STEP_TEXT_MAX} (split it, or move the detail into prose)", line=first_line)
        parts.append(("step", text))
    if "".join(prose).strip():
        parts.append(("prose", "\n".join(prose)))
    return parts


def runbook_parse(text: str, *, slug: str, digest: str = "") -> Runbook:
    """Parse one runbook's text; raises RunbookError naming the file line of the first problem."""
    where = f"{slug}.md"
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    meta, body_start = _front_matter(lines, where)

    blocks: list[tuple[str, object]] = []
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for kind, value in _body(lines, body_start, where):
        if kind == "prose":
            html = render_markdown(value)
            if html:
                blocks.append(("html", html))
            continue
        step_text = value
        # The id depends on the step's own words only, so editing other steps or the prose
        # leaves it alone and checkouts in progress keep their ticks.
        base = "s" + hashlib.sha256(step_text.encode("utf-8")).hexdigest()[:10]
        seen[base] = seen.get(base, 0) + 1
        step = Step(id=base if seen[base] == 1 else f"{base}-{seen[base]}", number=len(steps) + 1,
                    html=render_inline(step_text), text=step_text)
        steps.append(step)
        blocks.append(("step", step))
    if not steps:
        line = body_start + 1
        raise RunbookError(f"{where} line {line}: no steps: a runbook needs at least one '- [ ] ' task line", line=line)
    return Runbook(slug=slug, title=meta["title"], applies_to=meta["applies_to"], scenarios=meta["scenarios"],
                   severity=meta["severity"], blocks=tuple(blocks), steps=tuple(steps), digest=digest)


# --- Loading ---------------------------------------------------------------------------

_cache: dict[str, tuple[tuple, RunbookSet]] = {}
_cache_lock = threading.Lock()


def runbook_dir() -> Path:
    """The configured runbook directory."""
    from django.conf import settings

    return Path(getattr(settings, "JITAD_RUNBOOK_DIR", Path(settings.BASE_DIR) / "runbooks"))


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.md") if p.name.lower() != "readme.md" and p.is_file())


def _sort_key(rb: Runbook):
    return (SEVERITIES.index(rb.severity), rb.title.casefold(), rb.slug)


def _load(files: list[Path]) -> RunbookSet:
    runbooks: list[Runbook] = []
    errors: dict[str, str] = {}
    for path in files:
        slug = path.name[:-3]
        if not SLUG_RE.fullmatch(slug):
            errors[path.name] = (f"{path.name}: file name must be lowercase letters, digits and hyphens "
                                 "(at most 64) followed by .md")
            continue
        try:
            raw = path.read_bytes()
            if len(raw) > FILE_MAX_BYTES:
                raise RunbookError(f"{path.name}: file is larger than {FILE_MAX_BYTES // 1024} KiB")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RunbookError(f"{path.name}: not UTF-8 text (byte {e.start})") from None
            runbooks.append(runbook_parse(text, slug=slug, digest=hashlib.sha256(raw).hexdigest()))
        except RunbookError as e:
            errors[path.name] = str(e)
        except OSError as e:
            errors[path.name] = f"{path.name}: cannot be read ({e.strerror or e})"
    runbooks.sort(key=_sort_key)
    return RunbookSet(runbooks={rb.slug: rb for rb in runbooks}, errors=errors)


def runbooks_load(directory=None) -> RunbookSet:
    """Every runbook in the directory and every file that failed; reparsed only when a file changed."""
    directory = Path(directory) if directory is not None else runbook_dir()
    name = directory.name or str(directory)
    if not directory.is_dir():
        return RunbookSet(runbooks={}, errors={name: f"runbook directory {directory} does not exist"})
    try:
        files = _files(directory)
        signature = tuple((p.name, st.st_mtime_ns, st.st_size) for p in files for st in [p.stat()])
    except OSError as e:
        return RunbookSet(runbooks={}, errors={name: f"runbook directory {directory} cannot be read ({e.strerror or e})"})
    key = str(directory.resolve())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == signature:
            return hit[1]
    loaded = _load(files)
    with _cache_lock:
        if len(_cache) >= 32:  # test runs and --dir checks point at many directories
            _cache.clear()
        _cache[key] = (signature, loaded)
    return loaded


def runbook_get(slug: str) -> Runbook | None:
    """The runbook with this slug, or None; anything that is not a plain slug is None."""
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        return None
    return runbooks_load().runbooks.get(slug)


def runbooks_for(account_name: str) -> list[Runbook]:
    """The runbooks that apply to a break-glass account, most severe first."""
    return [rb for rb in runbooks_load().runbooks.values() if rb.applies(account_name)]
