"""A local HTTPS endpoint that answers like Splunk's HTTP Event Collector and keeps every event posted.

    hec = HecReceiver(certs, token="t0k").start()
    hec.url                 # https://127.0.0.1:<port>/services/collector/event
    hec.events              # every HEC envelope received, in order
    hec.busy = True         # answer 503 {"text":"Server is busy","code":9} (an outage)
"""
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/services/collector/event"


def split_batch(body: str) -> list[dict]:
    """A HEC batch is JSON objects one after another (whitespace between them is allowed)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(body):
        while i < len(body) and body[i].isspace():
            i += 1
        if i >= len(body):
            break
        obj, i = decoder.raw_decode(body, i)
        out.append(obj)
    return out


class HecReceiver:
    """HTTPS on 127.0.0.1:<free port> with the server certificate of ``certs``."""

    def __init__(self, certs, token: str = "test-hec-token"):
        self.token = token
        self.events: list[dict] = []
        self.requests = 0
        self.busy = False
        self.auth_seen: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, text: str, code: int) -> None:
                body = json.dumps({"text": text, "code": code}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                receiver.auth_seen.append(self.headers.get("Authorization", ""))
                if self.path.split("?")[0] != PATH:
                    return self._answer(404, "The requested URL was not found on this server.", 404)
                if self.headers.get("Authorization") != f"Splunk {receiver.token}":
                    return self._answer(401, "Invalid authorization", 3)
                if receiver.busy:
                    return self._answer(503, "Server is busy", 9)
                try:
                    events = split_batch(body.decode("utf-8"))
                except ValueError:
                    return self._answer(400, "Invalid data format", 6)
                receiver.events.extend(events)
                self._answer(200, "Success", 0)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(certs.cert), str(certs.key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{PATH}"

    def start(self) -> "HecReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
