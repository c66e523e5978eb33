"""A local HTTP endpoint that records what apprise's json:// destination posts to it."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """Listens on 127.0.0.1:<free port>; ``messages`` holds every JSON body received.

    ``posts`` keeps (path, body) pairs, so one receiver can stand for several destinations
    (``url_for("/chat")``). A path in ``refuse_paths`` always answers 500; one in
    ``hang_paths`` answers nothing until the receiver stops (a destination that hangs); one
    in ``hold_paths`` waits until ``release()`` and then answers as usual (a send caught
    half-way, for as long as a test needs).
    """

    def __init__(self):
        self.messages: list[dict] = []
        self.posts: list[tuple[str, dict]] = []
        self.fail_next = 0  # answer this many requests with 500, to test retries
        # answer this many requests carrying this title with 500: other alerts (a stopped
        # worker's, a previous test's) cannot use up the refusal a test meant for its own
        self.fail_titles: dict[str, int] = {}
        self.refuse_paths: set[str] = set()
        self.hang_paths: set[str] = set()
        self.hold_paths: set[str] = set()
        self._released = threading.Event()
        self.hits: list[str] = []  # every path asked for, answered or not
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?", 1)[0]
                receiver.hits.append(path)
                if path in receiver.hang_paths:
                    receiver._stopping.wait(60)
                    return
                if path in receiver.hold_paths:
                    receiver._released.wait(30)
                try:
                    message = json.loads(body)
                except ValueError:
                    message = {"raw": body.decode(errors="replace")}
                title = message.get("title") if isinstance(message, dict) else None
                if title in receiver.fail_titles and receiver.fail_titles[title] > 0:
                    receiver.fail_titles[title] -= 1
                    self._answer(500)
                    return
                if path in receiver.refuse_paths or receiver.fail_next > 0:
                    if path not in receiver.refuse_paths:
                        receiver.fail_next -= 1
                    self._answer(500)
                    return
                receiver.messages.append(message)
                receiver.posts.append((path, message))
                self._answer(200)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return self.url_for("/alerts")

    def url_for(self, path: str, userinfo: str = "") -> str:
        """An apprise json:// URL posting to ``path`` here (``userinfo``: "user:password@")."""
        return f"json://{userinfo}127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[dict]:
        """The bodies received on ``path``."""
        return [m for p, m in list(self.posts) if p == path]

    def clear(self) -> None:
        self.messages.clear()
        self.posts.clear()
        self.hits.clear()

    def release(self) -> None:
        """Let the requests held on ``hold_paths`` (and any later ones) through."""
        self._released.set()

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
