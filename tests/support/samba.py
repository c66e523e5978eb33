"""A throwaway Samba AD DC on loopback, for tests, benchmarks and the demo.

Recipe from ARCHITECTURE.md: DNS, SMB, NetBIOS off; LDAP 389, LDAPS 636 and the KDC on
one loopback address only (127.0.0.1 unless JITAD_TEST_DC_HOST names another, as each
process of a parallel test run does: the ports are fixed, the address is not); its own CA
under <dir>/private/tls/ca.pem; everything inside <dir>.
"""
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REALM = "JITAD.TEST"
DOMAIN = "JITAD"
BASE_DN = "DC=jitad,DC=test"
TLS_NAME = "DC1.jitad.test"
HOST = os.environ.get("JITAD_TEST_DC_HOST", "127.0.0.1")
if not HOST.startswith("127."):
    raise ValueError(f"JITAD_TEST_DC_HOST={HOST}: a test DC binds to a loopback address (127.x.y.z) only")
PORTS = (389, 636, 88)


def clean_env() -> dict[str, str]:
    """This process's environment without the Kerberos variables jitad sets for itself (jitad/kerberos.py):
    Samba's KDC and LDAP server, and samba-tool, use the DC's own keytab and configuration."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}


class SambaUnavailable(RuntimeError):
    """Samba cannot run here: not installed, not root, or its ports are taken."""


def _port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


# One DC per address at a time, machine-wide.
LOCK_PATH = Path(os.environ.get("JITAD_SAMBA_LOCK", "/tmp/jitad-samba.lock" if HOST == "127.0.0.1"
                                else f"/tmp/jitad-samba-{HOST}.lock"))


class SambaDC:
    """Provision, start, stop, pause and resume one Samba AD DC under ``root``.

    Samba's ports are fixed, so one DC runs on a loopback address at a time: ``start`` waits
    for a machine-wide lock (one per address) that ``stop`` (or the process's exit) releases.
    """

    def __init__(self, root: Path, admin_password: str | None = None):
        self._lock = None
        self.root = Path(root)
        # Random per run, never written anywhere but the DC's own files.
        self.admin_password = admin_password or "Jd-" + secrets.token_urlsafe(18)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / "samba.log"

    # -- facts -----------------------------------------------------------------------
    base_dn = BASE_DN
    host = HOST
    admin_dn = f"CN=Administrator,CN=Users,{BASE_DN}"
    ldaps_url = f"ldaps://{HOST}:636"
    tls_name = TLS_NAME

    @property
    def ca_file(self) -> str:
        return str(self.root / "private" / "tls" / "ca.pem")

    @property
    def smb_conf(self) -> Path:
        return self.root / "etc" / "smb.conf"

    @property
    def jit_ou(self) -> str:
        """The OU jitad manages in tests; each session's objects live in an OU below it."""
        return f"OU=JIT,{self.base_dn}"

    def settings_env(self, jit_ou: str | None = None) -> dict[str, str]:
        """The JITAD_LDAP_* variables that point jitad at this DC."""
        return {
            "JITAD_LDAP_URLS": self.ldaps_url,
            "JITAD_LDAP_CA_FILE": self.ca_file,
            "JITAD_LDAP_TLS_NAMES": self.tls_name,
            "JITAD_LDAP_BIND_DN": self.admin_dn,
            "JITAD_LDAP_BIND_PASSWORD": self.admin_password,
            "JITAD_LDAP_BASE_DN": self.base_dn,
            "JITAD_LDAP_JIT_OU": self.jit_ou if jit_ou is None else jit_ou,
        }

    # -- lifecycle -------------------------------------------------------------------
    def provision(self) -> None:
        if shutil.which("samba-tool") is None or shutil.which("samba") is None:
            raise SambaUnavailable("samba-tool/samba not found: install samba-ad-dc and samba-ad-provision (make deps)")
        if os.geteuid() != 0:
            raise SambaUnavailable("provisioning a Samba AD DC needs root")
        if self.smb_conf.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "run").mkdir(exist_ok=True)
        cmd = [
            "samba-tool", "domain", "provision",
            f"--targetdir={self.root}", f"--realm={REALM}", f"--domain={DOMAIN}",
            f"--adminpass={self.admin_password}", "--server-role=dc", "--dns-backend=NONE",
            f"--host-ip={HOST}", "--host-name=dc1",
            f"--option=interfaces={HOST}/8", "--option=bind interfaces only=yes",
            "--option=server services=-dns -smb -nbt -wrepl -dnsupdate -winbindd",
            "--option=dns forwarder=127.0.0.1",
            f"--option=pid directory={self.root / 'run'}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise SambaUnavailable(f"samba-tool provision failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        # A reset password must stop working at once; Samba accepts the old one for 60
        # minutes by default (provision does not keep this option, so write it here).
        conf = self.smb_conf.read_text().replace(
            "[global]\n", "[global]\n\told password allowed period = 0\n\tlog file = " + str(self.root / "log.%m") + "\n", 1
        ).replace("\tlog file = /var/log/samba/log.%m\n", "")
        self.smb_conf.write_text(conf)

    def _acquire(self, timeout: float = 1800) -> None:
        if self._lock is not None:
            return
        self._lock = open(LOCK_PATH, "w")
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SambaUnavailable(f"another Samba DC held {LOCK_PATH} for {timeout}s") from None
                if not told:
                    print(f"waiting for another Samba DC on this machine to stop ({LOCK_PATH}) ...", flush=True)
                    told = True
                time.sleep(0.5)

    def release(self) -> None:
        """Let the next DC on this machine start."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def start(self, timeout: float = 60) -> None:
        self._acquire()
        settle = time.monotonic() + 20  # a DC that just stopped may still hold its sockets
        while any(_port_open(p) for p in PORTS) and self.proc is None and time.monotonic() < settle:
            time.sleep(0.2)
        busy = [p for p in PORTS if _port_open(p)]
        if busy and self.proc is None:
            raise SambaUnavailable(
                f"ports {busy} on {HOST} are already in use (is `make demo` or another DC running?)"
            )
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["samba", "-s", str(self.smb_conf), "-i", "-M", "single", "--debug-stdout"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=clean_env(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SambaUnavailable(f"samba exited with {self.proc.returncode}; see {self.log_path}")
            if _port_open(636) and _port_open(389):
                return
            time.sleep(0.2)
        raise SambaUnavailable(f"samba did not open LDAPS within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        # samba's smbd (with its smbd-notifyd and cleanupd) runs in a session of its own (setsid), out of reach of
        # a signal to samba's process group, and does not always follow samba out: stop every group samba started.
        # Only while samba runs: once it is reaped its pid (and its children's) may be another program's.
        groups = {self.proc.pid} | _descendant_groups(self.proc.pid) if self.proc.poll() is None else set()
        if groups:
            _signal_groups(groups, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                _signal_groups(groups, signal.SIGKILL)
                self.proc.wait(5)
        deadline = time.monotonic() + 10
        while _groups_alive(groups) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _groups_alive(groups):
            _signal_groups(groups, signal.SIGKILL)
        self.proc = None
        deadline = time.monotonic() + 15
        while any(_port_open(p) for p in PORTS) and time.monotonic() < deadline:
            time.sleep(0.1)

    def pause(self) -> None:
        """Freeze the DC: connections hang instead of being refused."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)


def _processes() -> dict[int, tuple[int, int]]:
    """{pid: (parent pid, process group)} of every live process this machine shows in /proc (zombies left out:
    they are gone but for their parent's wait)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # the name, in parentheses, may hold spaces
        except OSError:  # it ended meanwhile
            continue
        if fields[0] != b"Z":
            found[int(entry)] = (int(fields[1]), int(fields[2]))
    return found


def _descendant_groups(pid: int) -> set[int]:
    """The process groups of every descendant of ``pid``."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for child, (parent, _group) in procs.items():
        children.setdefault(parent, []).append(child)
    groups, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            groups.add(procs[child][1])
            todo.append(child)
    return groups


def _signal_groups(groups: set[int], sig: int) -> None:
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _groups_alive(groups: set[int]) -> bool:
    return any(group in groups for _parent, group in _processes().values())

