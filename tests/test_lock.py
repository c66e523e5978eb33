"""The lock files agree with the requirements, and the requirements name everything the code imports.

``make venv`` installs from requirements-dev.lock with ``pip install --require-hashes`` (production
from requirements.lock); ``make lock`` regenerates both. Pure text checks (and the venv's own
package metadata), so a package added to a requirements file without ``make lock``, or imported
without being declared, fails here before it fails on a fresh machine.
"""
import ast
import hashlib
import importlib.metadata
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of the ``name==version`` lines of a requirements or lock file."""
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def lock_entries(path: Path) -> dict[str, list[str]]:
    """{canonical name: its hashes} of a lock file (one entry spans its continuation lines)."""
    entries, current = {}, None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonical(match.group(1))
            entries[current] = []
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            entries[current].append(line.strip().split(":", 1)[1].rstrip(" \\"))
        elif not line.startswith(" "):
            current = None
    return entries


def test_the_locks_were_made_from_the_current_requirements():
    """GIVEN requirements.txt and requirements-dev.txt as committed THEN both locks name their digest
    (what `make venv` checks): editing a requirements file without `make lock` fails here."""
    inputs = hashlib.sha1((REPO / "requirements.txt").read_bytes() + (REPO / "requirements-dev.txt").read_bytes()).hexdigest()
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert f"# inputs: {inputs}" in (REPO / lock).read_text().splitlines(), f"{lock} is stale: run make lock"


def test_every_pin_is_locked_at_its_version_with_hashes():
    runtime, dev = lock_entries(REPO / "requirements.lock"), lock_entries(REPO / "requirements-dev.lock")
    runtime_pins, dev_pins = pins(REPO / "requirements.lock"), pins(REPO / "requirements-dev.lock")
    for name, version in pins(REPO / "requirements.txt").items():
        assert runtime_pins.get(name) == version, f"requirements.lock has {name} {runtime_pins.get(name)}, not {version}"
    for name, version in {**pins(REPO / "requirements.txt"), **pins(REPO / "requirements-dev.txt")}.items():
        assert dev_pins.get(name) == version, f"requirements-dev.lock has {name} {dev_pins.get(name)}, not {version}"
    for lock, entries in (("requirements.lock", runtime), ("requirements-dev.lock", dev)):
        assert entries, f"{lock} names no package"
        unhashed = sorted(name for name, hashes in entries.items() if not hashes)
        assert not unhashed, f"{lock}: no hash for {unhashed}"
    # What tests run on is what production runs: the runtime packages at the same versions.
    assert {name: dev_pins[name] for name in runtime_pins} == runtime_pins


def _imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one file (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _third_party(paths: list[Path], local: set[str]) -> dict[str, set[str]]:
    """{top-level module: files importing it} for modules neither in the standard library nor local."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in _imports(path) - set(sys.stdlib_module_names) - local - {"__future__"}:
            found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def _undeclared(paths: list[Path], declared: set[str]) -> list[str]:
    local = {"jitad", "tests", "bench", "ops", "manage"}
    local |= {p.stem for d in ("bench", "ops") for p in (REPO / d).glob("*.py")}  # scripts import their siblings
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(_third_party(paths, local).items()):
        owners = {canonical(d) for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {sorted(files)}) belongs to no installed package"
        if not owners & declared:
            missing.append(f"{module} ({'/'.join(sorted(owners))}) imported by {sorted(files)[:3]}")
    return missing


def test_everything_jitad_imports_is_declared_in_requirements_txt():
    """GIVEN every import in jitad/ and manage.py THEN the package that provides it is pinned in
    requirements.txt itself (not merely pulled in by another package, which may drop it)."""
    paths = sorted((REPO / "jitad").rglob("*.py")) + [REPO / "manage.py"]
    assert not _undeclared(paths, set(pins(REPO / "requirements.txt")))


def test_everything_tests_bench_and_ops_import_is_declared():
    paths = [p for d in ("tests", "bench", "ops") for p in sorted((REPO / d).rglob("*.py"))]
    declared = set(pins(REPO / "requirements.txt")) | set(pins(REPO / "requirements-dev.txt"))
    assert not _undeclared(paths, declared)
