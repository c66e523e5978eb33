"""WS-Management over SOAP 1.2: parsing what pywinrm sends, answering as Windows does.

Only the remote-shell (WinRS) resource is served: Create / Command / Receive / Signal /
Delete on .../windows/shell/cmd. Every reply carries a:RelatesTo = the request's
a:MessageID. Errors are answered as WS-Man faults (HTTP 500), never as a crash.
"""
from __future__ import annotations

import base64
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from . import scripts

if TYPE_CHECKING:
    from .host import WinRMTestHost

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
FAULT_NS = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACTIONS = {
    TRANSFER + "Create": "Create",
    TRANSFER + "Delete": "Delete",
    SHELL + "Command": "Command",
    SHELL + "Receive": "Receive",
    SHELL + "Signal": "Signal",
    SHELL + "Send": "Send",
}
STATE_RUNNING = SHELL + "CommandState/Running"
STATE_DONE = SHELL + "CommandState/Done"
DEFAULT_OPERATION_TIMEOUT = 60.0  # Windows' MaxTimeoutms default, used when the header is absent

TIMEOUT_CODE = 2150858793  # ERROR_WSMAN_OPERATION_TIMEDOUT: pywinrm turns it into WinRMOperationTimeoutError
TIMEOUT_TEXT = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
ACCESS_DENIED_TEXT = "Access is denied. "


class BadRequest(Exception):
    """The body is not a WS-Man envelope we can read (answered with HTTP 400)."""


@dataclass
class Request:
    action: str  # full action URI
    name: str  # short name: Create, Command, ... or the URI when unknown
    message_id: str
    resource_uri: str
    shell_id: str | None
    operation_timeout: float
    body: ET.Element


@dataclass
class Reply:
    status: int
    xml: bytes


def parse_request(data: bytes) -> Request:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise BadRequest(f"not XML: {e}") from None
    if root.tag != f"{{{NS['s']}}}Envelope":
        raise BadRequest("not a SOAP 1.2 envelope")
    header, body = root.find("s:Header", NS), root.find("s:Body", NS)
    if header is None or body is None:
        raise BadRequest("envelope without Header or Body")
    action = (header.findtext("a:Action", "", NS) or "").strip()
    shell_id = None
    for selector in header.findall("w:SelectorSet/w:Selector", NS):
        if selector.get("Name") == "ShellId":
            shell_id = (selector.text or "").strip()
    return Request(
        action=action,
        name=ACTIONS.get(action, action),
        message_id=(header.findtext("a:MessageID", "", NS) or "").strip(),
        resource_uri=(header.findtext("w:ResourceURI", "", NS) or "").strip(),
        shell_id=shell_id,
        operation_timeout=parse_duration(header.findtext("w:OperationTimeout", "", NS)),
        body=body,
    )


def parse_duration(text: str | None) -> float:
    """xs:duration as WS-Man uses it (``PT20S``, ``PT1.5S``, ``PT1M``) in seconds."""
    m = re.fullmatch(r"\s*P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?\s*", text or "")
    if not text or not m or not any(m.groups()):
        return DEFAULT_OPERATION_TIMEOUT
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def envelope(action: str, relates_to: str, body: str, extra_header: str = "") -> bytes:
    ns = " ".join(f"xmlns:{k}={quoteattr(v)}" for k, v in NS.items())
    text = (
        f'<s:Envelope xml:lang="en-US" {ns}>'
        "<s:Header>"
        f"<a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>"
        f"{extra_header}"
        "</s:Header>"
        f"<s:Body>{body}</s:Body>"
        "</s:Envelope>"
    )
    return text.encode("utf-8")


def fault(relates_to: str, machine: str, *, code: str, subcode: str, reason: str,
          wsman_code: int | None = None, status: int = 500) -> Reply:
    detail = ""
    if wsman_code is not None:
        detail = (
            f"<s:Detail><f:WSManFault xmlns:f={quoteattr(FAULT_NS)} Code=\"{wsman_code}\" Machine={quoteattr(machine)}>"
            f"<f:Message>{escape(reason)}</f:Message></f:WSManFault></s:Detail>"
        )
    body = (
        "<s:Fault>"
        f"<s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(reason)}</s:Text></s:Reason>'
        f"{detail}"
        "</s:Fault>"
    )
    return Reply(status, envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body))


@dataclass
class Command:
    id: str
    command_line: str
    script: str | None  # None: not a supported command line
    reason: str = ""  # why unsupported
    outcome: scripts.Outcome | None = None  # set once it has "run"
    receives: int = 0
    done: bool = False


@dataclass
class Shell:
    id: str
    owner: str
    env: dict[str, str]
    commands: dict[str, Command] = field(default_factory=dict)


class ShellService:
    """The WinRS resource: shells and their commands, shared by every connection of one host."""

    def __init__(self, host: "WinRMTestHost"):
        self.host = host
        self.shells: dict[str, Shell] = {}
        self._lock = threading.Lock()

    def handle(self, req: Request, principal: str) -> Reply | None:
        """Answer one request; None means "answer nothing" (the host is stopping)."""
        if req.resource_uri.lower() != SHELL_URI:
            return self._fault(req, "s:Sender", "w:DestinationUnreachable",
                               "The WS-Management service cannot process the request because the resource URI is "
                               "not supported by the WinRM test host. ", 2150858770)
        handler = getattr(self, f"_do_{req.name}", None) if req.name in ACTIONS.values() else None
        if handler is None:
            return self._fault(req, "s:Sender", "a:ActionNotSupported",
                               f"The action {req.action!r} is not supported by the WinRM test host. ", 2150858771)
        return handler(req, principal)

    # -- actions ---------------------------------------------------------------------------

    def _do_Create(self, req: Request, principal: str) -> Reply:
        env = {}
        for var in req.body.findall("rsp:Shell/rsp:Environment/rsp:Variable", NS):
            if var.get("Name"):
                env[var.get("Name")] = var.text or ""
        shell = Shell(id=str(uuid.uuid4()).upper(), owner=principal, env=env)
        with self._lock:
            self.shells[shell.id] = shell
        url = escape(self.host.url)
        body = (
            "<x:ResourceCreated>"
            f"<a:Address>{url}</a:Address>"
            "<a:ReferenceParameters>"
            f"<w:ResourceURI>{SHELL_URI}</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell.id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters>"
            "</x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell.id}</rsp:ShellId><rsp:ResourceUri>{SHELL_URI}</rsp:ResourceUri>"
            f"<rsp:Owner>{escape(principal)}</rsp:Owner><rsp:InputStreams>stdin</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
        )
        return Reply(200, envelope(TRANSFER + "CreateResponse", req.message_id, body))

    def _do_Command(self, req: Request, principal: str) -> Reply:
        shell = self._shell(req)
        if isinstance(shell, Reply):
            return shell
        if self.host.fail == "fault":
            return self._fault(req, "s:Sender", "w:AccessDenied", ACCESS_DENIED_TEXT, 5)
        line = req.body.find("rsp:CommandLine", NS)
        if line is None:
            return self._fault(req, "s:Sender", "w:SchemaValidationError",
                               "The SOAP XML in the message does not match the corresponding XML schema definition. ",
                               2150858817)
        command = (line.findtext("rsp:Command", "", NS) or "").strip()
        arguments = " ".join((a.text or "") for a in line.findall("rsp:Arguments", NS))
        command_line = f"{command} {arguments}".strip()
        cmd = Command(id=str(uuid.uuid4()).upper(), command_line=command_line, script=None)
        try:
            cmd.script = scripts.identify(command, arguments)
        except scripts.Unsupported as e:
            cmd.reason = str(e)
        with self._lock:
            shell.commands[cmd.id] = cmd
        if self.host.fail != "hang":
            self._run(shell, cmd)
        body = f"<rsp:CommandResponse><rsp:CommandId>{cmd.id}</rsp:CommandId></rsp:CommandResponse>"
        return Reply(200, envelope(SHELL + "CommandResponse", req.message_id, body))

    def _do_Receive(self, req: Request, principal: str) -> Reply | None:
        shell = self._shell(req)
        if isinstance(shell, Reply):
            return shell
        stream = req.body.find("rsp:Receive/rsp:DesiredStream", NS)
        cmd = shell.commands.get((stream.get("CommandId") or "").upper()) if stream is not None else None
        if cmd is None:
            return self._fault(req, "s:Sender", "w:InvalidParameter",
                               "The Windows Remote Shell received a request to perform an operation on a command "
                               "identifier that does not exist. ", 2150858843)
        if self.host.fail == "hang" and not cmd.done:
            # Windows holds a Receive for OperationTimeout when the command produces nothing.
            if self.host._stopping.wait(req.operation_timeout):
                return None
            return self._timeout_fault(req)
        self._run(shell, cmd)
        cmd.receives += 1
        streams = ""
        if cmd.receives == 1 and not cmd.done:
            state = f'<rsp:CommandState CommandId="{cmd.id}" State="{STATE_RUNNING}"/>'
        else:
            cmd.done = True
            out = cmd.outcome
            for name, data in (("stdout", out.stdout), ("stderr", out.stderr)):
                if data:
                    streams += (f'<rsp:Stream Name="{name}" CommandId="{cmd.id}">'
                                f"{base64.b64encode(data).decode('ascii')}</rsp:Stream>")
            streams += (f'<rsp:Stream Name="stdout" CommandId="{cmd.id}" End="true"></rsp:Stream>'
                        f'<rsp:Stream Name="stderr" CommandId="{cmd.id}" End="true"></rsp:Stream>')
            state = (f'<rsp:CommandState CommandId="{cmd.id}" State="{STATE_DONE}">'
                     f"<rsp:ExitCode>{out.exit_code}</rsp:ExitCode></rsp:CommandState>")
        body = f'<rsp:ReceiveResponse SequenceID="{cmd.receives - 1}">{streams}{state}</rsp:ReceiveResponse>'
        return Reply(200, envelope(SHELL + "ReceiveResponse", req.message_id, body))

    def _do_Signal(self, req: Request, principal: str) -> Reply:
        shell = self._shell(req)
        if isinstance(shell, Reply):
            return shell
        signal = req.body.find("rsp:Signal", NS)
        command_id = (signal.get("CommandId") or "").upper() if signal is not None else ""
        with self._lock:
            cmd = shell.commands.pop(command_id, None)
        if cmd is None:
            return self._fault(req, "s:Sender", "w:InvalidParameter",
                               "The Windows Remote Shell received a request to perform an operation on a command "
                               "identifier that does not exist. ", 2150858843)
        return Reply(200, envelope(SHELL + "SignalResponse", req.message_id, "<rsp:SignalResponse/>"))

    def _do_Send(self, req: Request, principal: str) -> Reply:
        shell = self._shell(req)
        if isinstance(shell, Reply):
            return shell
        return Reply(200, envelope(SHELL + "SendResponse", req.message_id, "<rsp:SendResponse/>"))

    def _do_Delete(self, req: Request, principal: str) -> Reply:
        shell = self._shell(req)
        if isinstance(shell, Reply):
            return shell
        with self._lock:
            self.shells.pop(shell.id, None)
        return Reply(200, envelope(TRANSFER + "DeleteResponse", req.message_id, ""))

    # -- helpers ---------------------------------------------------------------------------

    def _run(self, shell: Shell, cmd: Command) -> None:
        """"Execute" the command once: the script's contract against the host's state."""
        if cmd.outcome is not None:
            return
        if cmd.script is None:
            cmd.outcome = scripts.unsupported(cmd.command_line, cmd.reason)
            return
        host = self.host
        with host.lock:
            call_input = scripts.decode_input(shell.env)[1] if "JITAD_INPUT" in shell.env else None
            host.calls.append(scripts.Call(cmd.script, call_input))
            if host.fail == "script_error":
                cmd.outcome = scripts.script_error(cmd.script)
            elif host.fail == "bad_output":
                cmd.outcome = scripts.malformed_result(cmd.script, host.bad_result)
            elif cmd.script == "local_admins":
                cmd.outcome = scripts.run_local_admins(list(host.admins), host.group_name)
            elif cmd.script == "security_events":
                cmd.outcome = scripts.run_security_events(shell.env, list(host.security_log))
            else:
                cmd.outcome = scripts.run_end_sessions(shell.env, host.sessions, host.logons,
                                                       survive=host.fail == "session_survives")

    def _shell(self, req: Request) -> Shell | Reply:
        with self._lock:
            shell = self.shells.get((req.shell_id or "").upper())
        if shell is None:
            return self._fault(
                req, "s:Sender", "w:InvalidSelectors",
                f"The request for the Windows Remote Shell with ShellId {req.shell_id} failed because the shell was "
                "not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no "
                "longer exists on the server. Provide the correct ShellId or create a new shell and retry the "
                "operation. ", 2150858843)
        return shell

    def _fault(self, req: Request, code: str, subcode: str, reason: str, wsman_code: int | None) -> Reply:
        return fault(req.message_id, self.host.computer_name, code=code, subcode=subcode, reason=reason,
                     wsman_code=wsman_code)

    def _timeout_fault(self, req: Request) -> Reply:
        return self._fault(req, "s:Receiver", "w:TimedOut", TIMEOUT_TEXT, TIMEOUT_CODE)
