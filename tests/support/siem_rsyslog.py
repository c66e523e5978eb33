"""A real rsyslogd (Debian's, with the GnuTLS stream driver) receiving RFC 5425 syslog over TLS on loopback.

    r = Rsyslog(tmp_dir, certs).start()     # certs: tests.support.test_ca.make_test_ca(...)
    r.url                                   # syslog+tls://127.0.0.1:<port>
    r.lines()                               # every message received, raw (PRI included), in order
    r.stop(); r.start()                     # a receiver down for a while, back on the same port

Messages go to a file through a template that writes the raw message, one per line
(jitad's records never contain a line break).
"""
import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.support.processes import free_port
from tests.support.waiting import wait_for

CONF = """\
global(workDirectory="{dir}"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}"
       defaultNetstreamDriverKeyFile="{key}"
       maxMessageSize="256k")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="raw" type="string" string="%rawmsg%\\n")
input(type="imtcp" address="127.0.0.1" port="{port}")
action(type="omfile" file="{out}" template="raw" flushOnTXEnd="on" asyncWriting="off")
"""


class Rsyslog:
    """``rsyslogd -n`` with a TLS TCP input on 127.0.0.1:<free port>, writing what it receives to ``out``."""

    def __init__(self, directory: Path, certs):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.out = self.dir / "received.log"
        self.conf = self.dir / "rsyslog.conf"
        self.pidfile = self.dir / "rsyslogd.pid"
        self.log = self.dir / "rsyslogd.log"
        self.conf.write_text(CONF.format(dir=self.dir, ca=certs.ca, cert=certs.cert, key=certs.key,
                                         port=self.port, out=self.out))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"syslog+tls://127.0.0.1:{self.port}"

    def start(self) -> "Rsyslog":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.pidfile.unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        wait_for(self._listening, timeout=20, message=f"rsyslogd listening on {self.port} (log: {self.log})")
        return self

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def lines(self) -> list[str]:
        if not self.out.exists():
            return []
        return [line for line in self.out.read_text(encoding="utf-8", errors="replace").splitlines() if line]

    def clear(self) -> None:
        """Forget what was received so far (rsyslog keeps appending to the same file)."""
        self._skip = len(self.lines())

    def received(self) -> list[str]:
        """Lines received since the last ``clear``."""
        return self.lines()[getattr(self, "_skip", 0):]

