"""Layers point down only, selectors only read, and no package's services and tasks import each other in a circle.

The layers, bottom to top (docs in STYLE.md, "Layout shows the architecture"):

0. seams and the engine: ``directory``, ``hosts``, ``vault``, ``engine``, and the small
   top-level helpers every app may use (``errors``, ``humantime``, ``broker``, ``formats``,
   ``admin_helpers``, ``bulk``, ``metrics``, ``logs``, ``kerberos``)
1. ``audit`` and ``notifications``
2. ``accounts``
3. ``health``
4. the domain apps: ``elevation`` and ``breakglass``
5. ``reports``: reads every domain app (KPIs, access history, the JIT PAM document); ``reviews``; ``operations``
   (the readiness and backup checks)
6. the admin site and URLs (``admin_site``, ``urls``), and the process wiring that loads
   every app (``settings``, ``celery``, ``wsgi``, ``__main__``: ``python -m jitad``)

A lower app that must tell a higher one something sends a Django signal; it never imports
it. Inside an app, ``selectors`` (reads) sit below ``services`` (writes) and ``tasks``: a
selector never imports either, of its own app or another, so a read can never start a write. The test reads the source with :mod:`ast` (nothing is imported), so an import hidden
inside a function counts as much as one at the top of a module: both tie the lower app to
the higher one.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jitad"

LAYERS = {
    "directory": 0, "hosts": 0, "vault": 0, "engine": 0,
    "errors": 0, "humantime": 0, "broker": 0, "formats": 0, "admin_helpers": 0, "bulk": 0, "metrics": 0, "logs": 0, "commands": 0, "kerberos": 0,
    "audit": 1, "notifications": 1,
    "accounts": 2,
    "health": 3,
    "elevation": 4, "breakglass": 4,
    "reports": 5, "reviews": 5, "operations": 5,
    "admin_site": 6, "urls": 6, "settings": 6, "celery": 6, "wsgi": 6, "__main__": 6,
}

# Imports that point up but cannot move, each with the reason. Keys are
# (importing module, imported module). Keep this empty unless there is no other way.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """Every ``jitad.*`` module ``name`` imports, anywhere in the file, with its line.

    ``from jitad.x import y`` counts as importing ``jitad.x.y`` when that is a module of
    ``modules`` (from :func:`_modules`), else ``jitad.x``; a relative import is resolved
    against ``name``'s package.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "jitad"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "jitad":
                continue
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.append((submodule if submodule in modules else module, node.lineno))
    return found


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``target`` names (``jitad.x.y.Name`` -> ``jitad.x.y``)."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    assert top in LAYERS, f"{module}: add jitad/{top} to LAYERS in tests/test_layers.py"
    return LAYERS[top]


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = {}
        for target, line in _imports(name, path, modules):
            resolved = _resolve(target, modules)
            if resolved and resolved != name and resolved != "jitad":
                edges.setdefault(resolved, line)
        graph[name] = edges
    return graph


def test_every_app_has_a_layer():
    for name in _modules():
        if name != "jitad":
            _layer(name)


def test_imports_point_down_only():
    """GIVEN every module under jitad/ WHEN its imports are read THEN none reaches a higher layer."""
    graph = _graph()
    upward = []
    for name, edges in graph.items():
        if name == "jitad":
            continue
        for target, line in edges.items():
            if _layer(target) > _layer(name) and (name, target) not in ALLOWED_UPWARD:
                upward.append(f"{name}:{line} imports {target} "
                              f"(layer {_layer(name)} -> {_layer(target)})")
    assert not upward, "imports that point up a layer:\n" + "\n".join(sorted(upward))


def _app(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_private_names_across_apps():
    """GIVEN every ``from jitad.<app>... import name`` WHEN the importer is another app THEN ``name`` is public.

    A leading underscore says "this app's business only"; a second app that needs it
    means the thing belongs lower down (or deserves a public name), as a person's AD
    groups moved from elevation to accounts.
    """
    private = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level or not (node.module or "").startswith("jitad."):
                continue
            if _app(node.module) == _app(name):
                continue
            private += [f"{name}:{node.lineno} imports {node.module}.{alias.name}"
                        for alias in node.names if alias.name.startswith("_")]
    assert not private, "private names imported from another app:\n" + "\n".join(sorted(private))


def test_allow_list_is_still_needed():
    graph = _graph()
    stale = [pair for pair in ALLOWED_UPWARD if pair[1] not in graph.get(pair[0], {})]
    assert not stale, f"allowed upward imports no longer present, remove them: {stale}"


def _cycles(graph: dict[str, dict[str, int]], nodes: set[str]) -> list[list[str]]:
    """Strongly connected components (of more than one module) of ``graph`` restricted to ``nodes``."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in nodes:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def _services_and_tasks(graph, app: str) -> set[str]:
    prefix = f"jitad.{app}."
    return {m for m in graph
            if m.startswith(prefix) and m[len(prefix):].split(".")[0] in ("services", "tasks")}


@pytest.mark.parametrize("app", sorted({p.parent.name for p in PACKAGE.glob("*/__init__.py")}))
def test_no_import_cycle_between_services_and_tasks(app):
    """GIVEN an app's services and tasks modules WHEN their imports are followed THEN none comes back round.

    Any import counts, including one inside a function: a circle that only works because
    one side imports late is still a circle.
    """
    graph = _graph()
    cycles = _cycles(graph, _services_and_tasks(graph, app))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _kind(module: str) -> str:
    """``selectors``, ``services`` or ``tasks`` when ``module`` is (inside) such a module of an app, else ''."""
    parts = module.split(".")[2:]
    return next((p for p in parts if p in ("selectors", "services", "tasks")), "")


def test_selectors_never_import_services_or_tasks():
    """GIVEN every selectors module WHEN its imports are read THEN none is a services or tasks module, of any app.

    Reads sit below writes: services and views call selectors, never the other way round.
    """
    graph = _graph()
    selectors = [name for name in graph if _kind(name) == "selectors"]
    assert selectors, "no selectors modules found: the rule would pass vacuously"
    wrong = [f"{name}:{line} imports {target}"
             for name in selectors for target, line in graph[name].items() if _kind(target) in ("services", "tasks")]
    assert not wrong, "selectors that import services or tasks:\n" + "\n".join(sorted(wrong))
