"""Real processes a test kills or stops: a jitad web server (gunicorn), a scheduler (celery beat), a Redis.

Each runs in a process group of its own, binds to 127.0.0.1 only and writes one log under
test-artifacts/, so a test can SIGKILL it like a machine dying and read what it said.
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.support.worker import CeleryWorker

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """One command in its own process group, with a log file."""

    def __init__(self, cmd: list[str], env: dict, log: Path):
        self.cmd, self.env, self.log = cmd, env, Path(log)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_bytes().decode(errors="replace") if self.log.exists() else ""

    def log_tail(self, n: int = 4000) -> str:
        return self.log_text()[-n:]

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown, no goodbye, like a machine losing power."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


class WebServer(Process):
    """gunicorn serving jitad on 127.0.0.1:<free port>."""

    def __init__(self, env: dict, log: Path, workers: int = 1):
        self.port = free_port()
        cmd = [sys.executable, "-m", "gunicorn", "jitad.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(workers), "--threads", "4", "--log-level", "warning"]
        super().__init__(cmd, env, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "WebServer":
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"gunicorn exited:\n{self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"gunicorn not answering /healthz within {timeout}s:\n{self.log_tail()}")


class Scheduler(Process):
    """``celery beat`` with jitad's elected scheduler (the default of CELERY_BEAT_SCHEDULER)."""

    def __init__(self, env: dict, log: Path):
        super().__init__([sys.executable, "-m", "celery", "-A", "jitad", "beat", "-l", "INFO"], env, log)


class RedisServer(Process):
    """A Redis of the test's own on 127.0.0.1:<free port>, keeping nothing on disk."""

    def __init__(self, workdir: Path, log: Path):
        self.port = free_port()
        self.workdir = Path(workdir)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        cmd = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
               "--dir", str(self.workdir), "--protected-mode", "yes"]
        super().__init__(cmd, dict(os.environ), log)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> "RedisServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"redis-server not answering within {timeout}s:\n{self.log_tail()}")


class Nodes:
    """Start jitad processes as if on machines of their own (``JITAD_NODE_NAME`` tells them apart)."""

    def __init__(self, base_env: dict, logs: Path):
        self.base_env = base_env
        self.logs = Path(logs)
        self.started: list = []

    def env(self, **overrides) -> dict:
        env = dict(self.base_env)
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def worker(self, env: dict, *, beat: bool = False, queues=("celery,notifications,hosts",)) -> CeleryWorker:
        w = CeleryWorker(env, self.logs.parent / "workers", beat=beat, queues=queues)
        self.started.append(w)
        w.start()
        return w

    def scheduler(self, env: dict) -> Scheduler:
        s = Scheduler(env, self.logs / f"beat-{env.get('JITAD_NODE_NAME', 'x')}-{uuid.uuid4().hex[:6]}.log")
        self.started.append(s)
        return s.start()

    def web(self, env: dict) -> WebServer:
        w = WebServer(env, self.logs / f"web-{env.get('JITAD_NODE_NAME', 'x')}-{uuid.uuid4().hex[:6]}.log")
        self.started.append(w)
        return w.start()

    def kill_all(self) -> None:
        for p in reversed(self.started):
            p.kill()
