"""jitad's PowerShell scripts as they travel: the constant command line, and the one result line they print.

Scripts are files shipped in ``jitad/hosts/scripts/``; the command line is built from the
script's text alone (input goes as data, in the shell's environment). The result is one
``JITAD:<base64 JSON>`` line, so no code page can mangle it; the exit code is checked.
"""
import base64
import json
import re
from functools import cache
from importlib import resources

from .errors import HostError, HostScriptFailed

MARKER = "JITAD:"
POWERSHELL = "powershell.exe"
POWERSHELL_ARGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand")


@cache
def script_text(name: str) -> str:
    """The text of a shipped script (``local_admins`` → scripts/local_admins.ps1)."""
    if not re.fullmatch(r"[a-z_]+", name):
        raise HostError(f"no script named {name!r}")
    try:
        return resources.files(__package__).joinpath("scripts", f"{name}.ps1").read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise HostError(f"no script named {name!r}") from e


def encoded_command(name: str) -> str:
    """The -EncodedCommand argument for a script: base64 of its UTF-16-LE text."""
    return base64.b64encode(script_text(name).encode("utf-16-le")).decode("ascii")



_CLIXML_ERROR = re.compile(r'<S S="Error">(.*?)</S>', re.S)


def _stderr_summary(stderr: bytes) -> str:
    """The first readable error line of stderr (PowerShell writes CLIXML there)."""
    text = stderr.decode("utf-8", "replace")
    if text.lstrip().startswith("#< CLIXML"):
        text = "".join(_CLIXML_ERROR.findall(text)).replace("_x000D__x000A_", " ")
    text = " ".join(text.split())
    return text[:300] or "(no error output)"


def parse_result(name: str, stdout: bytes, stderr: bytes, code: int) -> dict:
    """The script's JSON result; a non-zero exit or an unreadable result is HostScriptFailed."""
    text = stdout.decode("utf-8", "replace")
    lines = [ln.strip()[ln.strip().index(MARKER):] for ln in text.splitlines() if MARKER in ln]
    result = None
    if lines:
        try:
            result = json.loads(base64.b64decode(lines[-1][len(MARKER):], validate=True).decode("utf-8"))
        except ValueError as e:
            raise HostScriptFailed(f"{name}: unreadable result ({e})", exit_code=code) from e
    if code != 0:
        detail = result.get("error") if isinstance(result, dict) and result.get("error") else _stderr_summary(stderr)
        raise HostScriptFailed(f"{name} exited with {code}: {str(detail)[:300]}", exit_code=code)
    if not isinstance(result, dict):
        raise HostScriptFailed(f"{name} printed no result", exit_code=code)
    return result
