r"""A WinRM test host: a real WS-Management server, in-process, that pywinrm talks to unmodified.

    with WinRMTestHost(users={"JITAD\\svc-winrm": "secret"}) as host:
        Protocol(host.url, transport="ntlm", username="JITAD\\svc-winrm", password="secret")...

See host.py for the API, wsman.py for the protocol, scripts.py for the scripts' contracts.
"""
from .host import DEFAULT_PASSWORD, DEFAULT_USER, FAIL_MODES, WinRMTestHost, WSManRequest
from .scripts import Call

__all__ = ["WinRMTestHost", "WSManRequest", "Call", "FAIL_MODES", "DEFAULT_USER", "DEFAULT_PASSWORD"]
