"""A real Celery worker pair (engine with embedded beat, notifications) in one process group."""
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# As in production (ops/README.md): the grant engine's queue and the deliveries' queue
# each have a worker process of their own, so a hanging destination never holds the
# processes a revocation needs.
QUEUES = ("celery", "notifications,hosts")
# The workers running now, so a test can stop the ones started before it without starting any.
RUNNING: set["CeleryWorker"] = set()


class CeleryWorker:
    """``celery -A jitad worker -Q <queue>`` once per queue, beat with the first; killable like a real machine.

    Both processes share one process group (``proc`` leads it) and one log
    (``log_path``), so killing or stopping the group ends both, and the log reads as
    the machine's journal. ``queues=("celery,notifications",)`` runs one process for both.
    """

    def __init__(self, env: dict[str, str], log_dir: Path, beat: bool = True, concurrency: int | dict[str, int] = 2,
                 queues: tuple[str, ...] = QUEUES, nice: dict[str, int] | None = None, loglevel: str = "INFO"):
        self.env = env
        self.loglevel = loglevel  # DEBUG shows the lines jitad.logs leaves out at INFO (periodic tasks that did nothing)
        self.nice = nice or {}  # queue -> CPU niceness of its process (ops/README.md: deliveries below the engine)
        self.log_dir = Path(log_dir)
        self.beat = beat
        self.concurrency = concurrency  # processes per queue's worker: one number for all, or by queue (default 2)
        self.queues = queues
        self.proc: subprocess.Popen | None = None
        self.others: list[subprocess.Popen] = []
        self.log_path: Path | None = None

    def _processes(self, queue: str) -> int:
        if isinstance(self.concurrency, dict):
            return self.concurrency.get(queue, 2)
        return self.concurrency

    def start(self, timeout: float = 60) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"w{uuid.uuid4().hex[:8]}"
        self.log_path = self.log_dir / f"worker-{name}.log"
        log = open(self.log_path, "ab")
        names = []
        for i, queue in enumerate(self.queues):
            node = f"{name}-{queue.split(',')[0]}"
            names.append(node)
            cmd = [
                sys.executable, "-m", "celery", "-A", "jitad", "worker", "-l", self.loglevel, "-Q", queue,
                "-c", str(self._processes(queue)), "-n", f"{node}@%h", "--without-mingle", "--without-gossip",
            ]
            if self.beat and i == 0:
                cmd += ["-B", "-s", str(self.log_dir / f"beat-{name}")]
            if self.nice.get(queue):
                cmd = ["nice", "-n", str(self.nice[queue]), *cmd]
            # A process group of their own (out of the terminal's, so Ctrl-C does not reach them).
            group = self.proc.pid if i else 0
            try:
                proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, process_group=group)
            except OSError:
                log.close()
                self.kill()  # never leave the first one running on its own
                raise
            if i == 0:
                self.proc = proc
            else:
                self.others.append(proc)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in [self.proc, *self.others]:
                if proc.poll() is not None:
                    self.kill()
                    raise RuntimeError(f"celery worker exited with {proc.returncode}:\n{self.log_tail()}")
            text = self.log_path.read_bytes()
            if all(re.search(rb"%s@\S+ ready\." % node.encode(), text) for node in names):
                RUNNING.add(self)
                return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"celery workers not ready within {timeout}s:\n{self.log_tail()}")

    def adopt(self, other: "CeleryWorker") -> None:
        """Take over ``other``'s running processes (a replacement started for this worker after it
        died), so that whoever stops this worker stops them, and ``other`` no longer counts as
        running on its own (it would be started again as a second worker, with a second beat)."""
        self.proc, self.others, self.log_path = other.proc, other.others, other.log_path
        other.proc, other.others = None, []
        RUNNING.discard(other)
        RUNNING.add(self)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace") if self.log_path else ""

    def _end_group(self, sig: int, timeout: float) -> None:
        """Signal the whole group and wait until none of it is left.

        The group, not the processes this object knows of, is what must end: a worker
        that hangs in its own shutdown, or one started by another CeleryWorker whose
        ``proc`` was handed to this one, goes too.
        """
        if self.proc is None:
            return
        group = self.proc.pid
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return  # nothing left
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # reap the group's processes this test process started (zombies still count as members)
                while os.waitpid(-group, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                pass
            if not _live_members(group):
                return  # gone, or only zombies left for an init that does not reap them
            time.sleep(0.1)
        raise subprocess.TimeoutExpired(f"process group {group}", timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acks, like a machine dying."""
        try:
            self._end_group(signal.SIGKILL, 10)
        except subprocess.TimeoutExpired:
            pass  # killed; what is left are zombies waiting for their parent to reap them
        self.proc, self.others = None, []
        RUNNING.discard(self)

    def stop(self) -> None:
        """A warm shutdown, as a supervisor does it: SIGTERM to each main worker process only.

        Signalling the whole group would also hit the pool's children, and a child killed
        while holding the pool's queue lock leaves its parent waiting on that lock for ever.
        """
        mains = [p for p in (self.proc, *self.others) if p is not None]
        for proc in mains:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in mains:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        self.kill()  # whatever is left of the group (the embedded beat, a stuck child)


def _live_members(group: int) -> list[int]:
    """Processes of ``group`` that are not zombies (a zombie still counts for killpg)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


# Workers a test stopped, started again when the next test sets up (after this one's database flush).
STOPPED: list["CeleryWorker"] = []


@contextlib.contextmanager
def background_workers_stopped(*also: "CeleryWorker"):
    """Stop every worker that runs (the session's, with its beat, and any an earlier test left) for the
    block: the test's own processes are the only ones acting on the database and broker.

    They, and ``also`` (the session's worker) even if it was not running, are started again by
    :func:`restart_stopped` when the next test sets up, not here: here comes before the test's
    database flush, and a worker writing while PostgreSQL truncates every table deadlocks it.
    """
    stopped = list(dict.fromkeys([*RUNNING, *also]))
    for worker in stopped:
        worker.stop()
    try:
        yield
    finally:
        STOPPED.extend(w for w in stopped if w not in STOPPED)


def restart_stopped() -> None:
    """Start the workers an earlier test stopped (an autouse fixture calls this before each test)."""
    while STOPPED:
        STOPPED.pop(0).start()
