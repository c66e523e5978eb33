"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts."""
import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """``messages`` holds (envelope recipients, parsed message) for every mail received."""

    def __init__(self, parse: bool = True):
        """``parse=False`` keeps each message's raw bytes unparsed (a benchmark's server: cheap to run)."""
        self.messages: list[tuple[list[str], EmailMessage | bytes]] = []
        self.refuse: set[str] = set()  # recipients answered "550 no such user"
        self.defer: set[str] = set()  # recipients answered "450 try again later" (greylisting, a rate limit)
        self.per_session: int | None = None  # then "421 closing": a server's limit of messages per connection
        self.peers: list[tuple] = []  # the client end of each connection that sent a message, per message
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address.lower() in sink.refuse:
                    return "550 5.1.1 no such user"
                if address.lower() in sink.defer:
                    return "450 4.2.1 try again later"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                if sink.per_session is not None:
                    served = sum(1 for peer in sink.peers if peer == tuple(session.peer))
                    if served >= sink.per_session:
                        server.transport.close()  # as a server does after "421 too many messages"
                        return "421 4.7.0 too many messages in this session, closing"
                parsed = message_from_bytes(envelope.content, policy=policy.default) if parse else envelope.content
                sink.messages.append((list(envelope.rcpt_tos), parsed))
                sink.peers.append(tuple(session.peer))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port())

    @property
    def url(self) -> str:
        """The JITAD_EMAIL_URL that sends here (plain SMTP: loopback only)."""
        return f"smtp://127.0.0.1:{self.controller.port}"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in list(self.messages) if address in rcpt]

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
