"""A real Celery worker (with embedded beat) in its own process group."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class CeleryWorker:
    """``celery -A jitad worker -B`` with the given environment; killable like a real one."""

    def __init__(self, env: dict[str, str], log_dir: Path, beat: bool = True, concurrency: int = 2):
        self.env = env
        self.log_dir = Path(log_dir)
        self.beat = beat
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def start(self, timeout: float = 60) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"w{uuid.uuid4().hex[:8]}"
        self.log_path = self.log_dir / f"worker-{name}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "jitad", "worker", "-l", "INFO",
            "-c", str(self.concurrency), "-n", f"{name}@%h", "--without-mingle", "--without-gossip",
        ]
        if self.beat:
            cmd += ["-B", "-s", str(self.log_dir / f"beat-{name}")]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"celery worker not ready within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acks, like a machine dying."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
