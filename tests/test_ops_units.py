"""The files an operator installs (ops/systemd/, ops/nginx/, ops/jitad.env.example, ops/jitad) pass
the checkers of the programs that read them: ``systemd-analyze verify`` and its offline security
review, ``nginx -t``, POSIX sh; and nginx runs the site in front of the web unit's gunicorn. Each
checker is Debian's (``make deps`` installs them), and each is also handed a broken copy, to show
it really runs and refuses. The units' commands run confined as far as a test can without systemd
as PID 1 (a read-only system but /tmp, no capability): their system-call filter and the rest of
the sandbox are checked by ``systemd-analyze`` only, not exercised.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.test_ca import make_test_ca
from tests.test_ops_docs import code_queues, worker_queues
from tests.test_settings import PRODUCTION

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "ops" / "systemd"
SITE = REPO / "ops" / "nginx" / "jitad.conf"
EXAMPLE = REPO / "ops" / "jitad.env.example"
WRAPPER = REPO / "ops" / "jitad"
HOME = "/opt/jitad"  # where ops/README.md installs the checkout; the units name it
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
LONG_RUNNING = ("jitad-web.service", "jitad-engine.service", "jitad-notifications.service", "jitad-scheduler.service")
# The most exposure `systemd-analyze security` may rate a unit (its scale is 0-10, "OK" below 2; the
# threshold is given in tenths). The units rate 1.4 with systemd 252.
EXPOSURE_THRESHOLD = 20


def tool(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    assert path, f"{name} is not installed: `make deps` installs it from Debian's packages"
    return path


# --- systemd ------------------------------------------------------------------------------

def unit_directives(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment of a unit file, in order."""
    section, found = "", []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def executables(units: Path) -> set[str]:
    """The programs the units' Exec*= lines start."""
    return {value.lstrip("-@:+!").split()[0] for path in units.iterdir() if path.suffix == ".service"
            for _, key, value in unit_directives(path) if key.startswith("Exec")}


def systemd_root(tmp_path: Path, units: Path) -> Path:
    """A root for ``systemd-analyze --root``: Debian's own units, jitad's in /etc/systemd/system, and what
    they start: the checkout's programs as stand-ins (no checkout is installed here), the system's
    own programs copied from this machine (so a wrong path to one is caught)."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(units, root / "etc/systemd/system")
    for program in executables(units):
        target = root / program.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if program.startswith(HOME + "/"):
            target.write_text("#!/bin/sh\n")
            target.chmod(0o755)
        elif os.access(program, os.X_OK):
            shutil.copy2(program, target)
    return root


def verify(root: Path, names: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([tool("systemd-analyze"), "verify", "--man=no", f"--root={root}", *names],
                          capture_output=True, text=True, timeout=120)


def security(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", f"--root={root}",
                           f"--threshold={EXPOSURE_THRESHOLD}", "--no-pager", name],
                          capture_output=True, text=True, timeout=120)


def assert_verified(result: subprocess.CompletedProcess) -> None:
    """systemd-analyze verify exits 0 on some mistakes (an unknown key, a value it cannot parse: it
    warns and ignores the line), so anything it says counts as a failure too."""
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), \
        f"systemd-analyze verify (exit {result.returncode}):\n{result.stdout}{result.stderr}"


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    names = sorted(p.name for p in UNITS.iterdir())
    assert {"jitad.target", "jitad-audit-verify.timer", *LONG_RUNNING} <= set(names)
    assert_verified(verify(systemd_root(tmp_path, UNITS), names))


@pytest.mark.parametrize("breakage", [
    ("ProtectSystem=strict", "ProtectSytem=strict"),           # a misspelt key: systemd ignores the line
    ("Restart=always", "Restart=sometimes"),                   # a value it cannot parse
    ("/opt/jitad/.venv/bin/celery", "/usr/bin/jitad-celery"),  # a program that is not there
])
def test_verify_refuses_a_broken_unit(tmp_path, breakage):
    """GIVEN a copy of the engine's unit with one mistake WHEN it is verified as the real ones are THEN it fails."""
    broken = tmp_path / "units"
    shutil.copytree(UNITS, broken)
    unit = broken / "jitad-engine.service"
    old, new = breakage
    assert old in unit.read_text()
    unit.write_text(unit.read_text().replace(old, new, 1))
    result = verify(systemd_root(tmp_path, broken), ["jitad-engine.service"])
    assert result.returncode != 0 or result.stderr.strip(), "systemd-analyze verify took a broken unit"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_rated_ok_by_systemd_analyze_security(tmp_path, name):
    result = security(systemd_root(tmp_path, UNITS), name)
    assert result.returncode == 0, f"{name}: exposure above {EXPOSURE_THRESHOLD / 10}:\n{result.stdout[-3000:]}"


def test_security_refuses_a_unit_without_its_hardening(tmp_path):
    """GIVEN the web unit with its hardening block removed WHEN the same review rates it THEN it fails."""
    broken = tmp_path / "units"
    shutil.copytree(UNITS, broken)
    unit = broken / "jitad-web.service"
    text = unit.read_text()
    start, end = text.index("# Hardening:"), text.index("[Install]")
    unit.write_text(text[:start] + text[end:])
    assert security(systemd_root(tmp_path, broken), "jitad-web.service").returncode != 0


def test_every_service_has_the_same_hardening_user_and_environment():
    """The hardening block, the user and the environment file are the same in every service, so a
    fix to one cannot be forgotten in another; what jitad writes is its state directory only."""
    blocks = {}
    for name in SERVICES:
        directives = unit_directives(UNITS / name)
        service = {(key, value) for section, key, value in directives if section == "Service"}
        text = (UNITS / name).read_text()
        blocks[name] = text[text.index("# Hardening:"):].split("\n\n")[0].strip()
        for expected in [("User", "jitad"), ("Group", "jitad"), ("EnvironmentFile", "/etc/jitad/jitad.env"),
                         ("WorkingDirectory", HOME), ("NoNewPrivileges", "yes"), ("CapabilityBoundingSet", ""),
                         ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                         ("SystemCallFilter", "@system-service"), ("ReadWritePaths", "/var/lib/jitad"),
                         ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6")]:
            assert expected in service, f"{name}: no {expected[0]}={expected[1]}"
        assert [v for _, k, v in directives if k == "ReadWritePaths"] == ["/var/lib/jitad"], name
    assert len(set(blocks.values())) == 1, "the hardening blocks differ between units"


def test_the_long_running_services_restart_and_belong_to_the_target():
    target = dict((k, v) for _, k, v in unit_directives(UNITS / "jitad.target"))
    assert set(target["Wants"].split()) == set(LONG_RUNNING)
    for name in LONG_RUNNING:
        directives = {(k, v) for _, k, v in unit_directives(UNITS / name)}
        assert {("Restart", "always"), ("PartOf", "jitad.target"), ("WantedBy", "jitad.target"),
                ("KillMode", "mixed")} <= directives, name  # mixed: SIGTERM to the main process, which stops the rest


def test_the_workers_consume_exactly_the_codes_queues():
    """Every queue jitad declares has a worker unit, and Celery's %h reaches Celery (systemd's %h is a home)."""
    commands = " ".join(v for name in SERVICES for _, k, v in unit_directives(UNITS / name) if k == "ExecStart")
    assert worker_queues(commands) == code_queues()
    assert "celery -A jitad beat" in commands
    for name in SERVICES:
        for _, key, value in unit_directives(UNITS / name):
            if key == "ExecStart" and " -n " in value:
                assert re.search(r" -n \w+@%%h ", value), f"{name}: -n must read NAME@%%h in a unit"


# --- nginx --------------------------------------------------------------------------------

def nginx_test(tmp_path: Path, site_text: str) -> subprocess.CompletedProcess:
    """``nginx -t`` on a configuration that includes ``site_text`` (the site with its two certificate
    paths pointed at a certificate made here) the way Debian's nginx.conf includes sites-enabled/."""
    paths = make_test_ca(tmp_path / "tls", names=("jitad.corp.example",))
    site = tmp_path / "sites-enabled" / "jitad"
    site.parent.mkdir()
    for placeholder, real in (("/etc/ssl/jitad/jitad.crt", paths.cert), ("/etc/ssl/jitad/jitad.key", paths.key)):
        assert placeholder in site_text, f"the site no longer names {placeholder}"
        site_text = site_text.replace(placeholder, str(real))
    site.write_text(site_text)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""pid {tmp_path}/nginx.pid;
error_log stderr;
events {{}}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    include {site.parent}/*;
}}
""")
    return subprocess.run([tool("nginx"), "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(conf)],
                          capture_output=True, text=True, timeout=60)


def test_the_nginx_site_passes_nginx_t(tmp_path):
    result = nginx_test(tmp_path, SITE.read_text())
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


@pytest.mark.parametrize("breakage", [
    ("proxy_pass http://127.0.0.1:8000;", "proxy_pass http://127.0.0.1:8000"),  # a lost semicolon
    ("ssl_ciphers ECDHE", "ssl_cipher ECDHE"),                                    # a directive nginx does not know
])
def test_nginx_t_refuses_a_broken_site(tmp_path, breakage):
    old, new = breakage
    text = SITE.read_text()
    assert old in text
    result = nginx_test(tmp_path, text.replace(old, new, 1))
    assert result.returncode != 0 and "[emerg]" in result.stderr, result.stderr


def test_the_site_sends_jitad_what_its_settings_expect():
    """The proxy headers match jitad/settings: the scheme header Django trusts, the client address a
    trusted proxy names (never appended to the client's own), the Host as sent; TLS 1.2+ only; bodies
    capped above JITAD_MAX_BODY_BYTES so jitad's own 413 answers."""
    from django.conf import settings

    text = SITE.read_text()
    header = settings_proxy_header()
    assert f"proxy_set_header {header} https;" in text
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
    assert "proxy_set_header Host $host;" in text
    assert "proxy_pass http://127.0.0.1:8000;" in text
    assert re.findall(r"ssl_protocols ([^;]+);", text) == ["TLSv1.2 TLSv1.3"] * 2  # the default server's too
    limit = re.search(r"client_max_body_size (\d+)m;", text)
    assert limit and int(limit.group(1)) * 1024 * 1024 > settings.JITAD_MAX_BODY_BYTES
    assert not re.search(r"^\s*add_header\s", text, re.M), "jitad sets its security headers itself"


def settings_proxy_header() -> str:
    """The header production's SECURE_PROXY_SSL_HEADER names, as nginx writes it (X-Forwarded-Proto); read
    from the source, since the tests' settings run with JITAD_BEHIND_TLS_PROXY off."""
    source = (REPO / "jitad" / "settings" / "security.py").read_text()
    meta = re.search(r'SECURE_PROXY_SSL_HEADER = \("HTTP_([A-Z_]+)", "https"\)', source).group(1)
    return "-".join(part.capitalize() for part in meta.split("_"))


# --- the environment file -----------------------------------------------------------------

ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
PLAIN = re.compile(r"^[^\s\"'`$\\#]*$")  # read alike by systemd and sh: nothing to quote
QUOTED = re.compile(r"^'([^']*)'$")       # single quotes: literal in both


def env_file_values(text: str) -> dict[str, str]:
    """The variables of an environment file in the form the example keeps to (each line a comment, blank,
    NAME=plain or NAME='quoted'), as systemd's EnvironmentFile= and sh's `.` both read that form."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = ASSIGNMENT.match(line)
        assert match, f"line {number} is neither a comment nor NAME=value: {line!r}"
        name, value = match.groups()
        quoted = QUOTED.match(value)
        assert quoted or PLAIN.match(value), \
            f"line {number}: {name}'s value would be read differently by systemd and sh (quote it in '...'): {value!r}"
        values[name] = quoted.group(1) if quoted else value
    return values


def filled_in(tmp_path: Path) -> Path:
    """The example with what an operator fills in: the empty required values, and paths of this test.
    Its servers' names become 127.0.0.1 (port 9 for alerts), so that nothing here looks a name up
    outside this machine."""
    text = re.sub(r"\b(db|redis|dc1|dc2|smtp)\.corp\.example\b", "127.0.0.1", EXAMPLE.read_text())
    filled = dict(PRODUCTION, JITAD_ALERT_URLS="json://127.0.0.1:9/hook")
    for name in ("JITAD_SECRET_KEY", "JITAD_LDAP_BIND_PASSWORD", "JITAD_VAULT_KEYS", "JITAD_ALERT_URLS"):
        text, count = re.subn(rf"^{name}=$", f"{name}={filled[name]}", text, flags=re.M)
        assert count == 1, f"the example should leave {name} empty for the operator"
    for name, value in (("JITAD_VAR_DIR", tmp_path / "var"), ("JITAD_STATIC_ROOT", tmp_path / "var" / "static"),
                        ("PROMETHEUS_MULTIPROC_DIR", tmp_path / "run" / "metrics")):  # /run/jitad: the units make it
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert count == 1
    path = tmp_path / "jitad.env"
    path.write_text(text)
    return path


def test_the_example_reads_the_same_in_systemd_and_sh(tmp_path):
    """GIVEN the example WHEN sh sources it (as ops/jitad does) THEN it sets exactly the values the
    systemd reading gives (no inline comment became part of a value, no space split one)."""
    expected = env_file_values(EXAMPLE.read_text())
    assert expected["JITAD_ENV"] == "production" and " " in expected["JITAD_LDAP_BIND_DN"]
    result = subprocess.run(["sh", "-c", 'set -a; . "$1"; set +a; env -0', "sh", str(EXAMPLE)],
                            env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    got = dict(item.split("=", 1) for item in result.stdout.split("\0") if item)
    assert {name: got.get(name) for name in expected} == expected


def test_the_env_form_is_checked():
    """The reader refuses what systemd and sh would read apart (it is what the test above relies on)."""
    for line in ("JITAD_ENV=production   # note", "JITAD_LDAP_BIND_DN=OU=Service Accounts", 'X="a$b"', "X=a$b"):
        with pytest.raises(AssertionError):
            env_file_values(line)
    assert env_file_values("# c\n\nA=b\nB='c d#e'\n") == {"A": "b", "B": "c d#e"}


def run_wrapper(args: list[str], env_file: Path | None, tmp_path: Path) -> subprocess.CompletedProcess:
    """ops/jitad as an operator runs it: no JITAD_* in the environment, the checkout's .venv."""
    env = {"PATH": os.environ["PATH"], "JITAD_HOME": str(REPO), "JITAD_USER": subprocess.check_output(
        ["id", "-un"], text=True).strip(), "HOME": str(tmp_path)}
    if env_file:
        env["JITAD_ENV_FILE"] = str(env_file)
    assert (REPO / ".venv" / "bin" / "python").exists(), "ops/jitad runs the checkout's .venv (make venv)"
    return subprocess.run([str(WRAPPER), *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_the_filled_in_example_is_a_production_configuration_djangos_deploy_checks_accept(tmp_path):
    """GIVEN the example with its empty secrets filled in WHEN the jitad command runs Django's deployment
    checks with it THEN jitad starts in production (refusing nothing) with the file's values, and the
    only remark is HSTS preloading (a site's own decision)."""
    env_file = filled_in(tmp_path)
    report = run_wrapper(["shell", "-c", "from django.conf import settings as s; import json; print(json.dumps("
                          "[s.DATABASES['default']['ENGINE'], s.JITAD_LDAP_BIND_DN, s.JITAD_TRUSTED_PROXIES,"
                          " s.SESSION_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, s.ALLOWED_HOSTS, str(s.JITAD_RUNBOOK_DIR)]))"],
                         env_file, tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    engine, bind_dn, proxies, secure, header, hosts, runbooks = __import__("json").loads(report.stdout.strip().splitlines()[-1])
    assert engine == "django.db.backends.postgresql"
    assert bind_dn == "CN=svc-jitad,OU=Service Accounts,DC=corp,DC=example"
    assert proxies == ["127.0.0.1"] and secure is True and header == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert hosts == ["jitad.corp.example"] and runbooks == str(REPO / "runbooks")
    checked = run_wrapper(["check", "--deploy"], env_file, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-3000:]
    remarks = set(re.findall(r"\((\w+\.[EWC]\d+)\)", checked.stdout + checked.stderr))
    assert remarks <= {"security.W021"}, checked.stdout + checked.stderr


def test_the_jitad_command_refuses_without_its_environment_file(tmp_path):
    result = run_wrapper(["check"], tmp_path / "missing.env", tmp_path)
    assert result.returncode == 1 and "cannot read" in result.stderr and "missing.env" in result.stderr


@pytest.mark.parametrize("command", [[str(WRAPPER), "--version"], [sys.executable, "-m", "jitad", "--version"]])
def test_jitad_version(command, tmp_path):
    """`jitad --version` (ops/jitad, no environment file needed) and `python -m jitad --version` print the release."""
    import jitad

    env = {"PATH": os.environ["PATH"], "JITAD_HOME": str(REPO), "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"jitad {jitad.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", jitad.__version__)


def test_the_changelog_has_an_entry_for_the_release_the_code_names():
    """CHANGELOG.md's first release heading is jitad.__version__ (with its date), under an Unreleased part:
    raising the version without writing its entry, or the reverse, fails here."""
    import jitad

    releases = re.findall(r"^## (\S+)(?: — (\d{4}-\d{2}-\d{2}))?$", (REPO / "CHANGELOG.md").read_text(), flags=re.M)
    assert releases[0] == ("Unreleased", ""), releases[:2]
    assert releases[1][0] == jitad.__version__ and releases[1][1], releases[:2]


def jitad_commands(text: str) -> list[list[str]]:
    """Every `jitad COMMAND ARGS` of ``text``: in shell blocks (a line, or after `&&`) and inline code spans."""
    found = []
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    pieces = [part for block in blocks for line in block.splitlines() for part in line.split("&&")]
    pieces += re.sub(r"```.*?```", "", text, flags=re.S).split("`")[1::2]
    for piece in pieces:
        piece = piece.split("#", 1)[0].strip()
        if piece.startswith("jitad "):
            found.append(piece.split()[1:])
    return found


def test_every_jitad_command_the_install_gives_exists_and_parses():
    """GIVEN each `jitad ...` ops/README.md tells an operator to run WHEN its words go to that manage.py
    command's own parser THEN the command exists and takes them (`jitad --version` aside)."""
    from django.core.management import get_commands, load_command_class

    commands, seen = get_commands(), set()
    for words in jitad_commands((REPO / "ops" / "README.md").read_text()):
        if words == ["--version"]:
            seen.add("--version")
            continue
        command, args = words[0], words[1:]
        assert command in commands, f"ops/README.md: `jitad {command}` is no manage.py command"
        parser = load_command_class(commands[command], command).create_parser("jitad", command)
        try:
            parser.parse_args(args)
        except SystemExit:
            raise AssertionError(f"ops/README.md: `jitad {' '.join(words)}` is refused by the command") from None
        seen.add(command)
    assert {"--version", "check", "migrate", "collectstatic", "createsuperuser", "jitad_apply_policy"} <= seen
    assert jitad_commands("```sh\njitad migrate --plan   # note\na && jitad check --deploy\n```\n`jitad showmigrations`") \
        == [["migrate", "--plan"], ["check", "--deploy"], ["showmigrations"]]


# --- nginx in front of jitad, for real ----------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}:\n{log.read_text()[-3000:]}")


def confined(command: list[str]) -> list[str]:
    """``command`` confined as far as a test can without systemd as PID 1, for what the units' hardening
    would break: every file system read-only but /tmp (the test's var dir and database, and the stand-in
    for PrivateTmp), no capability at all, no privilege gain (a mount namespace of its own, as root)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind /tmp /tmp && mount -o remount,bind,ro / '
            '&& exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all "$@"', "sh", *command]


def test_the_confinement_holds(tmp_path):
    """The stand-in really confines: a write outside /tmp and a capability's use both fail in it."""
    outside = REPO / "var" / f"confined-{os.getpid()}"
    result = subprocess.run(confined(["sh", "-c", f"touch {tmp_path}/ok && (touch {outside} || echo refused) "
                                      "&& (chown 1 /tmp/ok 2>/dev/null || echo no-chown) && grep CapEff /proc/self/status"]),
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "refused" in result.stdout and "no-chown" in result.stdout and not outside.exists()
    assert "CapEff:\t0000000000000000" in result.stdout and (tmp_path / "ok").exists()


def web_command(port: int) -> list[str]:
    """jitad-web.service's ExecStart with the checkout in place of /opt/jitad and a free port for 8000."""
    start = next(v for _, k, v in unit_directives(UNITS / "jitad-web.service") if k == "ExecStart")
    assert "--bind 127.0.0.1:8000 " in start
    return start.replace(HOME, str(REPO)).replace("127.0.0.1:8000", f"127.0.0.1:{port}").split()


def https_get(port: int, path: str, name: str, ca: Path, method: str = "GET", body: bytes | None = None,
              headers: dict | None = None):
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    conn.sock = context.wrap_socket(__import__("socket").create_connection(("127.0.0.1", port), timeout=30),
                                    server_hostname=name)
    conn.request(method, path, body=body, headers={"Host": name, **(headers or {})})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_nginx_serves_jitad_over_tls_with_the_headers_it_expects(tmp_path):
    """GIVEN jitad's web unit's command (gunicorn) with the filled-in example's production settings, and
    nginx running the site (its ports and certificate moved to the test's) WHEN gunicorn starts THEN its
    main process tells systemd it is ready (Type=notify); WHEN a browser's requests go through nginx THEN
    jitad sees HTTPS (no redirect, HSTS sent: X-Forwarded-Proto is believed) for its
    own host name, the same request straight to gunicorn is redirected to https (so the header is what
    made the difference), other names get no TLS handshake and no HTTP answer, port 80 redirects, and
    a body over JITAD_MAX_BODY_BYTES gets jitad's own 413 while a far bigger one stops at nginx."""
    import http.client
    import socket
    import ssl

    name = "jitad.corp.example"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    env.update(env_file_values(filled_in(tmp_path).read_text()))
    # No PostgreSQL or Redis of this test's own: nothing here reads the database or sends a message.
    env.update(JITAD_DATABASE_URL=f"sqlite:///{tmp_path / 'jitad.sqlite3'}", CELERY_BROKER_URL="jitadfs://")
    collected = subprocess.run([sys.executable, "-m", "jitad", "collectstatic", "--noinput"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=300)  # as the install does, for the manifest
    assert collected.returncode == 0, collected.stderr[-3000:]
    web_port, https_port, http_port = free_port(), free_port(), free_port()
    web_log = tmp_path / "gunicorn.log"
    # Type=notify: systemd waits for READY=1 on $NOTIFY_SOCKET from the main process (NotifyAccess=main).
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # the sender's pid comes with each message
    notify.settimeout(60)
    env["NOTIFY_SOCKET"] = str(tmp_path / "notify")
    web = subprocess.Popen(confined(web_command(web_port)), cwd=REPO, env=env, stdout=open(web_log, "wb"),
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    nginx = None
    try:
        ready, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(12))
        assert b"READY=1" in ready.split(b"\n"), ready
        sender = next(__import__("struct").unpack("3i", data)[0] for level, kind, data in ancillary
                      if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS))
        assert sender == web.pid, "READY=1 must come from the main process (NotifyAccess=main)"
        wait_for_port(web_port, web, web_log)
        site = SITE.read_text()
        for old, new in ((r"listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl"), (r"listen 80", f"listen 127.0.0.1:{http_port}"),
                         (r"listen \[::\]:\d+[^;]*;\n", ""), (r"127\.0\.0\.1:8000", f"127.0.0.1:{web_port}")):
            site, count = re.subn(old, new, site)
            assert count, f"the site no longer has {old!r}"
        checked = nginx_test(tmp_path, site)
        assert checked.returncode == 0, checked.stderr
        ca = tmp_path / "tls" / "ca.pem"
        nginx_log = tmp_path / "nginx.log"
        nginx = subprocess.Popen([tool("nginx"), "-p", str(tmp_path), "-e", "stderr", "-c", str(tmp_path / "nginx.conf"),
                                  "-g", "daemon off;"], stdout=open(nginx_log, "wb"), stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(https_port, nginx, nginx_log)

        page = https_get(https_port, "/account/login/", name, ca)
        assert page.status == 200, (page.status, web_log.read_text()[-3000:])
        assert page.getheader("Strict-Transport-Security", "").startswith("max-age=31536000")
        assert "script-src" in page.getheader("Content-Security-Policy", "")

        direct = http.client.HTTPConnection("127.0.0.1", web_port, timeout=30)
        direct.request("GET", "/account/login/", headers={"Host": name})
        answer = direct.getresponse()
        assert answer.status == 301 and answer.getheader("Location") == f"https://{name}/account/login/"
        direct.close()

        with pytest.raises(ssl.SSLError):
            https_get(https_port, "/account/login/", "other.corp.example", ca)

        plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        plain.request("GET", "/account/login/?next=/", headers={"Host": name})
        answer = plain.getresponse()
        assert answer.status == 301 and answer.getheader("Location") == f"https://{name}/account/login/?next=/"
        plain.close()
        other = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        other.request("GET", "/", headers={"Host": "other.corp.example"})
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            other.getresponse()
        other.close()

        from django.conf import settings

        over = b"[" + b"0," * ((settings.JITAD_MAX_BODY_BYTES + 1024) // 2) + b"0]"
        refused = https_get(https_port, "/account/login/", name, ca, "POST", over, {"Content-Type": "application/json"})
        assert refused.status == 413 and refused.getheader("Content-Type") == "application/json"
        huge = b"0" * (3 * 1024 * 1024)
        stopped = https_get(https_port, "/account/login/", name, ca, "POST", huge, {"Content-Type": "application/json"})
        assert stopped.status == 413 and "nginx" in (stopped.getheader("Server") or "")
    finally:
        notify.close()
        for proc in (nginx, web):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=30)


def unit_command(name: str) -> list[str]:
    """A unit's ExecStart as systemd runs it: %% read as %, the checkout in place of /opt/jitad."""
    start = next(v for _, k, v in unit_directives(UNITS / name) if k == "ExecStart")
    assert not re.search(r"%[^%]", start.replace("%%", "")), f"{name}: a systemd specifier in ExecStart"
    return start.replace("%%", "%").replace(HOME, str(REPO)).split()


def test_the_worker_and_scheduler_units_commands_start_report_and_stop_cleanly(tmp_path):
    """GIVEN the example's production settings on a database of the test's own (SQLite, migrated) and the
    embedded broker WHEN the engine, notifications and scheduler units' commands start THEN each reports
    its heartbeat under the name the docs give (engine@HOST reading "celery", notifications@HOST reading
    "notifications" and "hosts", scheduler@HOST), and SIGTERM, what `systemctl stop` sends, ends each
    within the units' TimeoutStopSec with a clean goodbye (stopped_at set: the watchdog alerts no death)."""
    import socket
    import sqlite3
    import time

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    env.update(env_file_values(filled_in(tmp_path).read_text()))
    database = tmp_path / "jitad.sqlite3"
    env.update(JITAD_DATABASE_URL=f"sqlite:///{database}", CELERY_BROKER_URL="jitadfs://",
               JITAD_LDAP_URLS="ldaps://127.0.0.1:1", JITAD_HEARTBEAT_SECONDS="0.5")
    migrated = subprocess.run([sys.executable, "-m", "jitad", "migrate", "--noinput"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    host = socket.gethostname()
    expected = {f"engine@{host}": ("worker", "celery"), f"notifications@{host}": ("worker", "hosts,notifications"),
                f"scheduler@{host}": ("scheduler", "")}
    procs = {}
    try:
        for name in ("jitad-engine.service", "jitad-notifications.service", "jitad-scheduler.service"):
            log = tmp_path / f"{name}.log"
            procs[name] = (subprocess.Popen(confined(unit_command(name)), cwd=REPO, env=env, stdout=open(log, "wb"),
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True), log)

        def heartbeats() -> dict:
            with sqlite3.connect(database, timeout=30) as db:
                rows = db.execute("SELECT node, role, queues, stopped_at FROM engine_heartbeat").fetchall()
            return {node: (role, ",".join(sorted(q for q in queues.split(",") if q)), stopped)
                    for node, role, queues, stopped in rows}

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for name, (proc, log) in procs.items():
                assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            seen = heartbeats()
            if all(node in seen for node in expected):
                break
            time.sleep(0.5)
        assert {node: seen.get(node, (None, None, None))[:2] for node in expected} == expected, seen
        timeouts = {name: int(dict((k, v) for _, k, v in unit_directives(UNITS / name))["TimeoutStopSec"])
                    for name in procs}
        for name, (proc, log) in procs.items():
            proc.send_signal(15)  # KillMode=mixed: SIGTERM to the main process, which stops its pool itself
        for name, (proc, log) in procs.items():
            assert proc.wait(timeout=timeouts[name]) == 0, f"{name}:\n{log.read_text()[-3000:]}"
        assert all(heartbeats()[node][2] for node in expected), heartbeats()
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=30)
