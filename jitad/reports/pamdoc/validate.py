"""Text checks of a JIT PAM document: what it must state (JIT, duration or approval, MFA for every session)
and what it should (break-glass), each found or missing with its line, and the report around them."""
import re
from dataclasses import dataclass, field

from .document import Line

_I = re.IGNORECASE
NEGATION = re.compile(r"\b(not|never|no longer|isn't|aren't|cannot|without mfa|optional)\b", _I)
JIT = re.compile(r"\bjust[- ]in[- ]time\b|\bJIT\b|\btime[- ](?:bound|limited|boxed)\b|"
                 r"\b(?:no|zero)\s+standing\s+(?:privileges?|admins?|administrators?|access)\b", _I)
DURATION = re.compile(r"\b\d+(?:\.\d+)?\s*(?:minutes?|mins?|hours?|hrs?|h)\b", _I)
DURATION_CONTEXT = re.compile(r"\b(duration|lasts?|expir\w*|max(?:imum)?|at most|longer than|up to|limited to|"
                              r"time[- ]bound|for\s+\d)", _I)
APPROVAL = re.compile(r"\bapprov\w*\b", _I)
APPROVAL_CONTEXT = re.compile(r"\b(request\w*|requires?|need\w*|workflow|before|N-of-M|\d+\s+of\s+\d+|decide\w*)\b", _I)
MFA = re.compile(r"\b(MFA|multi-?factor|two-?factor|2FA|OTP|one-time codes?|webauthn|passkeys?)\b", _I)
ALL = re.compile(r"100\s*%|\bevery\b|\ball\b|\beach\b|\balways\b", _I)
PRIVILEGED = re.compile(r"\b(privileged|admin\w*|elevat\w*|sessions?)\b", _I)
BREAKGLASS = re.compile(r"\bbreak[- ]?glass\b|\bemergency (?:access|accounts?)\b|\bfirecall\b", _I)


@dataclass(frozen=True)
class Hit:
    line: int
    text: str
    kind: str = ""


@dataclass
class CheckResult:
    """One text check: found or missing, the lines that satisfy it, and what to add when missing."""

    key: str
    title: str
    required: bool
    suggestion: str
    hits: list[Hit] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.hits)


def _excerpt(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def states_mfa_for_all(text: str) -> bool:
    """True for a statement of MFA on every / 100% of privileged sessions (and not its negation)."""
    return bool(MFA.search(text) and ALL.search(text) and PRIVILEGED.search(text) and not NEGATION.search(text))


def _jit(line: Line) -> str:
    return "jit" if JIT.search(line.text) and not re.search(r"\bnot\s+(?:just[- ]in[- ]time|time[- ]bound)", line.text, _I) else ""


def _duration_or_approval(line: Line) -> str:
    if DURATION.search(line.text) and DURATION_CONTEXT.search(line.text):
        return "duration"
    if APPROVAL.search(line.text) and APPROVAL_CONTEXT.search(line.text):
        return "approval"
    return ""


def _mfa(line: Line) -> str:
    return "mfa" if states_mfa_for_all(line.text) else ""


def _breakglass(line: Line) -> str:
    return "break-glass" if BREAKGLASS.search(line.text) else ""


CHECKS = (
    ("jit", "JIT coverage (just-in-time, time-bound or no standing privilege)", True, _jit,
     'State the model, e.g. "Privileged access is granted just-in-time and is time-bound: no standing privilege."'),
    ("duration_or_approval", "Duration or approval workflow", True, _duration_or_approval,
     'State how long access lasts or who approves it, e.g. "No grant lasts longer than 240 minutes; every request '
     'requires approval by at least 1 approver."'),
    ("mfa", "MFA for 100% of privileged sessions", True, _mfa,
     'State MFA for every privileged session, e.g. "MFA is enforced on 100% of privileged sessions: every request, '
     'approval and break-glass step needs a fresh MFA verification."'),
    ("breakglass", "Break-glass reported (not required)", False, _breakglass,
     "Describe emergency access: the break-glass accounts, their dual control, runbooks and sealed envelopes."),
)


def text_checks(lines: list[Line]) -> list[CheckResult]:
    """Each check with every line that satisfies it (a check with no line is missing)."""
    results = [CheckResult(key, title, required, suggestion) for key, title, required, _, suggestion in CHECKS]
    for line in lines:
        for result, (_, _, _, match, _) in zip(results, CHECKS):
            kind = match(line)
            if kind:
                result.hits.append(Hit(line.no, _excerpt(line.text), kind))
    return results


def text_passed(results: list[CheckResult]) -> bool:
    return all(r.found for r in results if r.required)


def text_report(results: list[CheckResult]) -> list[str]:
    """The lines of the text part of the report: each check, found or missing, with its first lines."""
    out = []
    for r in results:
        if not r.found:
            out.append(f"[missing] {r.title}")
            continue
        out.append(f"[found]   {r.title}")
        shown, kinds = [], set()
        for hit in r.hits:  # the first line of each kind (a duration and an approval line, say)
            if hit.kind not in kinds:
                kinds.add(hit.kind)
                shown.append(hit)
        for hit in shown:
            label = f" ({hit.kind})" if r.key == "duration_or_approval" else ""
            out.append(f"          line {hit.line}{label}: {hit.text}")
        if len(r.hits) > len(shown):
            out.append(f"          also on line(s) {', '.join([str(h.line) for h in r.hits if h not in shown][:20])}")
    return out
