"""What an operator follows must agree with the code: queue names in the worker commands, and
every variable jitad/settings/ reads in ops/jitad.env.example (and nothing it does not read).

Pure text checks against the code's own values, so the docs cannot drift from it again.
"""
import ast
import re
from pathlib import Path

from django.conf import settings

from tests.test_settings import PRODUCTION

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "ops" / "README.md").read_text()
EXAMPLE = (REPO / "ops" / "jitad.env.example").read_text()
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
VARIABLE = re.compile(r"\b((?:JITAD|CELERY)_[A-Z0-9_]*[A-Z0-9])\b")


def code_queues() -> set[str]:
    return {q.name for q in settings.CELERY_TASK_QUEUES}


def worker_queues(text: str) -> set[str]:
    """Every queue a `celery ... worker -Q a,b` command in ``text`` consumes."""
    return {name for match in re.findall(r"-Q\s+([\w,]+)", text) for name in match.split(",") if name}


def test_every_routed_task_goes_to_a_declared_queue():
    assert {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} <= code_queues()
    assert settings.CELERY_TASK_DEFAULT_QUEUE in code_queues()


def test_worker_commands_consume_exactly_the_codes_queues():
    """GIVEN the queues jitad declares WHEN an operator starts the workers ops/README.md and the env
    example show THEN every queue has a worker, and no command names a queue jitad does not have."""
    for name, text in (("ops/README.md", README), ("ops/jitad.env.example", EXAMPLE)):
        assert worker_queues(text) == code_queues(), f"{name}: -Q names {worker_queues(text)}, code has {code_queues()}"


def test_the_docs_count_the_queues_right():
    for name, text in (("ops/README.md", README), ("ops/jitad.env.example", EXAMPLE)):
        counts = [NUMBERS[word.lower()] for word in re.findall(r"\b(one|two|three|four|five|six)\s+queues\b", text, re.I)]
        assert counts, f"{name} never says how many queues there are"
        assert set(counts) == {len(code_queues())}, f"{name} counts {counts} queues; the code has {len(code_queues())}"
        for queue in code_queues():
            assert f'"{queue}"' in text or f"`{queue}`" in text, f"{name} never names the {queue} queue"


def settings_variables() -> tuple[set[str], set[str], set[str]]:
    """(names read from the environment, prefixes of families like JITAD_NOTIFY_<NAME>, suffix words)
    as written in the modules of jitad/settings/: every string constant that is a variable name or a prefix."""
    files = sorted((REPO / "jitad" / "settings").glob("*.py"))
    assert len(files) > 1, "jitad/settings/ holds the settings' parts"
    trees = [ast.parse(path.read_text(), filename=str(path)) for path in files]
    constants = {n.value for tree in trees for n in ast.walk(tree)
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    names = {c for c in constants if re.fullmatch(r"(JITAD|CELERY)_[A-Z0-9_]*[A-Z0-9]", c)}
    prefixes = {c for c in constants if re.fullmatch(r"JITAD_[A-Z0-9_]+_", c)}
    words = {c.strip("_") for c in constants if re.fullmatch(r"_?[A-Z][A-Z_]*", c)}
    return names, prefixes, words


def example_variables() -> set[str]:
    return set(VARIABLE.findall(EXAMPLE))


def test_every_variable_the_settings_read_is_in_the_example():
    names, prefixes, _ = settings_variables()
    mentioned = example_variables()
    assert names - mentioned == set(), "read by jitad/settings/ but missing from ops/jitad.env.example"
    for prefix in prefixes:
        assert any(m.startswith(prefix) for m in mentioned), f"no {prefix}... variable shown in the example"


def test_the_example_names_no_variable_jitad_does_not_read():
    """A typo or a removed setting in the example would be silently ignored by jitad."""
    names, prefixes, words = settings_variables()
    unknown = set()
    for var in example_variables() - names:
        prefix = max((p for p in prefixes if var.startswith(p)), key=len, default="")
        rest = var[len(prefix):]
        if prefix == "JITAD_NOTIFY_" and rest:
            continue  # a named destination: any name
        if prefix and any(rest == w or rest.endswith("_" + w) for w in words):
            continue  # JITAD_WINRM_PASSWORD_FILE, JITAD_WINRM_PROFILE_TIER0_USERNAME, ...
        unknown.add(var)
    assert unknown == set(), "named in ops/jitad.env.example but never read by jitad/settings/"


def test_the_required_section_lists_what_production_needs():
    """The first section of the example is what production refuses to start without (tests/test_settings.py
    proves each refusal); the rest is optional."""
    head, _, rest = EXAMPLE.partition("# === Optional")
    assert rest, "the example has no Optional section"
    required = set(re.findall(r"^((?:JITAD|CELERY)_\w+)=", head.partition("# === Required in production")[2], re.M))
    assert required == set(PRODUCTION), f"required section {sorted(required)} vs production needs {sorted(PRODUCTION)}"
    assert "JITAD_ENV=production" not in rest


def documented_commands(text: str) -> list[list[str]]:
    """Every ``manage.py <command> <args>`` in an inline code span of ``text``, as argument lists.

    ``a|b`` stands for either word (one list each); ``[--optional]`` parts are left out.
    """
    found = []
    spans = re.sub(r"```.*?```", "", text, flags=re.S).split("`")[1::2]  # inline code, fenced blocks aside
    for span in (s for s in spans if re.search(r"\bmanage\.py ", s)):
        words = re.sub(r"\[[^\]]*\]", "", span.split("manage.py ", 1)[1]).split()
        lists = [[]]
        for word in words:
            choices = word.split("|") if re.fullmatch(r"[\w-]+(\|[\w-]+)+", word) else [word]
            lists = [done + [choice] for done in lists for choice in choices]
        found.extend(lists)
    return found


def test_every_manage_py_command_the_ops_docs_give_exists_and_parses():
    """GIVEN each `manage.py ...` an operator is told to run (ops/README.md, the env example) WHEN
    its words are given to that command's own parser THEN the command exists and takes them."""
    from django.core.management import get_commands, load_command_class

    commands = get_commands()
    checked = set()
    for name, text in (("ops/README.md", README), ("ops/jitad.env.example", EXAMPLE)):
        for words in documented_commands(text):
            command, args = words[0], words[1:]
            assert command in commands, f"{name}: `manage.py {command}` does not exist"
            parser = load_command_class(commands[command], command).create_parser("manage.py", command)
            try:
                parser.parse_args(args)
            except SystemExit:
                raise AssertionError(f"{name}: `manage.py {' '.join(words)}` is refused by the command") from None
            checked.add(command)
    assert {"jitad_apply_policy", "jitad_breakglass", "jitad_held_removals", "jitad_rekey"} <= checked


def test_documented_commands_parse_the_way_an_operator_writes_them():
    assert documented_commands("run `manage.py jitad_held_removals confirm|discard GROUP` now") == [
        ["jitad_held_removals", "confirm", "GROUP"], ["jitad_held_removals", "discard", "GROUP"]]
    assert documented_commands("`python manage.py x [--scan] --format text|csv`") == [
        ["x", "--format", "text"], ["x", "--format", "csv"]]
