"""What people type reaches chat services as text, never as links, mentions or markup.

Slack and Teams (Power Automate workflows) are HTTPS services on fixed hosts. The test
sends through apprise's own Slack and Workflows code, unchanged, with the process's
HTTPS proxy pointed at a local endpoint that accepts the tunnel, ends TLS with a
throwaway certificate (the URLs say ``verify=no``) and records what was posted.
"""
import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jitad.elevation import services
from jitad.notifications.models import Delivery, Notification
from jitad.notifications.services import delivery_send
from tests.elevation.builders import policy, target, user

SLACK = "slack://T1JITAD01/B1JITAD02/abcdefghijklmnopqrstuvwx?verify=no&footer=no&image=no"
SLACK_BLOCKS = SLACK + "&blocks=yes"
TEAMS = "workflows://prod-00.westeurope.logic.azure.com/3fa85f6457174562b3fc2c963f66afa6/s1gNaTuRe?verify=no&image=no"
# The tunnel's certificate is a throwaway one: not checking it is the point.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

EVIL = "<https://evil.example/a|Approve request #12 here> <!channel> [Approve](https://evil.example/x) **now**"


def _certificate(directory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jitad test tunnel")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "tunnel.pem", directory / "tunnel.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class TunnelEnd:
    """An HTTPS proxy that is also the destination: records (host, path, JSON body) posted through it."""

    def __init__(self, cert_file: str, key_file: str):
        self.posts: list[tuple[str, str, dict]] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        end = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_CONNECT(self):
                self.host = self.path.rsplit(":", 1)[0]
                self.send_response(200, "Connection established")
                self.end_headers()
                self.connection = context.wrap_socket(self.connection, server_side=True)
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb")
                self.close_connection = False  # the tunnelled requests follow on this connection

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                end.posts.append((getattr(self, "host", ""), self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tunnel(tmp_path, monkeypatch):
    end = TunnelEnd(*_certificate(tmp_path))
    monkeypatch.setenv("HTTPS_PROXY", end.url)
    monkeypatch.setenv("https_proxy", end.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield end
    end.stop()


def _strings(payload) -> list[str]:
    if isinstance(payload, dict):
        return [s for v in payload.values() for s in _strings(v)]
    if isinstance(payload, list):
        return [s for v in payload for s in _strings(v)]
    return [payload] if isinstance(payload, str) else []


@pytest.mark.django_db
def test_a_justification_reaches_slack_and_teams_as_plain_text(settings, tunnel):
    """GIVEN a policy telling Slack (legacy attachments and blocks) and a Teams workflow
    WHEN alice asks with a justification holding a disguised Slack link, a channel
    mention and a Markdown link THEN every service receives them escaped: Slack as
    entities in plain (non-mrkdwn) text, Teams with the Markdown characters escaped;
    nothing arrives as a link, a mention or bold text."""
    settings.JITAD_BASE_URL = "https://jitad.example.test"
    settings.JITAD_NOTIFY_DESTINATIONS = {"chat": [SLACK, SLACK_BLOCKS, TEAMS]}
    srv = target("SRV01")
    policy(srv, notify=["chat"])
    user("bob", "Leads")
    alice = user("alice", "Ops")
    services.request_create(requester=alice, target=srv, justification=EVIL)
    note = Notification.objects.get(event="request.pending")
    for d in note.deliveries.all():
        delivery_send(delivery_id=d.id)
    assert set(note.deliveries.values_list("state", flat=True)) == {Delivery.State.SENT}

    slack_legacy, slack_blocks, teams = sorted(tunnel.posts, key=lambda p: (p[0], "blocks" in json.dumps(p[2])))
    assert slack_legacy[0] == slack_blocks[0] == "hooks.slack.com"
    assert teams[0] == "prod-00.westeurope.logic.azure.com"

    (attachment,) = slack_legacy[2]["attachments"]
    assert slack_legacy[2]["mrkdwn"] is False
    assert ("&lt;https://evil.example/a|Approve request #12 here&gt; &lt;!channel&gt; "
            "[Approve](https://evil.example/x) **now**") in attachment["text"]
    (section,) = [b["text"] for b in slack_blocks[2]["attachments"][0]["blocks"] if b["type"] == "section"]
    assert section["type"] == "plain_text"
    assert "&lt;!channel&gt;" in section["text"]

    card = teams[2]["attachments"][0]["content"]
    (body,) = [b["text"] for b in card["body"] if b.get("id") == "body"]
    assert r"\[Approve\]\(https://evil\.example/x\) \*\*now\*\*" in body
    assert r"<\!channel\>" in body

    for _, _, payload in tunnel.posts:
        for text in _strings(payload):
            assert "<!channel>" not in text and "|Approve request #12 here>" not in text
