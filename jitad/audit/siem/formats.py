"""Audit events as SIEM records: RFC 5424 syslog (CEF or JSON message), Splunk HEC, OCSF-shaped JSON.

Every record carries the event's ``seq`` (gapless: a jump means events are missing),
``hash`` and ``prev_hash`` (each event's hash covers its content and the previous hash:
a SIEM that recomputes or just links them sees any edit or removal).
"""
import json

from django.core.serializers.json import DjangoJSONEncoder

# RFC 5612's documentation enterprise number: the SD-ID of jitad's structured data.
SD_ID = "jitad@32473"
APP_NAME = "jitad"
VENDOR, PRODUCT, VERSION = "jitad", "jitad", "1"
# syslog facility authpriv (10); severity notice (5), warning (4) for alerts.
FACILITY = 10


def event_dict(ev) -> dict:
    """The event as plain JSON values, chain fields included."""
    return {
        "seq": ev.seq, "time": ev.at.isoformat(), "actor": ev.actor, "action": ev.action,
        "object_type": ev.object_type, "object_id": ev.object_id, "before": ev.before, "after": ev.after,
        "reason": ev.reason, "data": ev.data, "hash": ev.hash, "prev_hash": ev.prev_hash,
    }


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _severity(ev) -> int:
    return 4 if ev.action.startswith("alert.") else 5


# --- syslog (RFC 5424) ------------------------------------------------------------
def _sd_value(value: str) -> str:
    """An SD-PARAM value: '"', '\\' and ']' escaped (RFC 5424 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value."""
    clean = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return clean or "-"


def cef_header(value: str) -> str:
    """A CEF header field: '\\' and '|' escaped, line breaks flattened."""
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def cef_value(value) -> str:
    """A CEF extension value: '\\' and '=' escaped, line breaks as \\n and \\r."""
    return (str(value).replace("\\", "\\\\").replace("=", "\\=")
            .replace("\r", "\\r").replace("\n", "\\n"))


def cef_message(ev) -> str:
    """The event as one CEF:0 line."""
    ext = [
        ("rt", int(ev.at.timestamp() * 1000)), ("suser", ev.actor), ("act", ev.action),
        ("cs1Label", "objectType"), ("cs1", ev.object_type), ("cs2Label", "objectId"), ("cs2", ev.object_id),
        ("cs3Label", "hash"), ("cs3", ev.hash), ("cs4Label", "prevHash"), ("cs4", ev.prev_hash),
        ("cs5Label", "before"), ("cs5", ev.before), ("cs6Label", "after"), ("cs6", ev.after),
        ("cn1Label", "seq"), ("cn1", ev.seq), ("externalId", ev.seq), ("msg", ev.reason),
    ]
    if ev.data:
        ext += [("flexString1Label", "data"), ("flexString1", _dumps(ev.data))]
    severity = 7 if ev.action.startswith("alert.") else 3
    name = f"{ev.action} {ev.object_type}:{ev.object_id}"
    header = "|".join(["CEF:0", *(cef_header(v) for v in (VENDOR, PRODUCT, VERSION, ev.action, name)), str(severity)])
    return header + "|" + " ".join(f"{k}={cef_value(v)}" for k, v in ext)


def syslog_frame(ev, *, fmt: str, hostname: str) -> bytes:
    """One RFC 5424 message (without the octet count): seq, hash and prev_hash in structured data."""
    pri = FACILITY * 8 + _severity(ev)
    stamp = ev.at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    sd = f'[{SD_ID} seq="{ev.seq}" hash="{_sd_value(ev.hash)}" prev_hash="{_sd_value(ev.prev_hash)}"]'
    msg = cef_message(ev) if fmt == "cef" else _dumps(event_dict(ev))
    head = f"<{pri}>1 {stamp} {_token(hostname, 255)} {APP_NAME} - {_token(ev.action, 32)} {sd} "
    return head.encode("ascii") + b"\xef\xbb\xbf" + msg.encode("utf-8")


# --- HTTPS: Splunk HEC, OCSF ----------------------------------------------------------
def ocsf_event(ev) -> dict:
    """An OCSF-shaped record: Account Change / Entity Management style, with jitad's chain in metadata."""
    alert = ev.action.startswith("alert.")
    return {
        "class_uid": 3004 if not alert else 2004,  # Entity Management; Detection Finding for alerts
        "class_name": "Entity Management" if not alert else "Detection Finding",
        "category_uid": 3 if not alert else 2,
        "category_name": "Identity & Access Management" if not alert else "Findings",
        "activity_id": 99, "activity_name": ev.action, "type_uid": (3004 if not alert else 2004) * 100 + 99,
        "severity_id": 3 if alert else 1,
        "time": int(ev.at.timestamp() * 1000),
        "actor": {"user": {"name": ev.actor}},
        "entity": {"type": ev.object_type, "uid": ev.object_id},
        "status_detail": f"{ev.before} -> {ev.after}" if (ev.before or ev.after) else "",
        "message": ev.reason,
        "unmapped": {"data": ev.data, "before": ev.before, "after": ev.after},
        "metadata": {
            "version": "1.1.0", "product": {"name": PRODUCT, "vendor_name": VENDOR},
            "uid": str(ev.seq), "sequence": ev.seq, "log_name": "audit",
            "extension": {"name": "jitad", "hash": ev.hash, "prev_hash": ev.prev_hash},
        },
    }


def hec_batch(events, *, fmt: str, hostname: str) -> bytes:
    """A HEC batch body: one envelope per event, concatenated (Splunk's batch form)."""
    parts = []
    for ev in events:
        body = ocsf_event(ev) if fmt == "ocsf" else event_dict(ev)
        parts.append(_dumps({
            "time": round(ev.at.timestamp(), 6), "host": hostname, "source": APP_NAME,
            "sourcetype": "ocsf:jitad" if fmt == "ocsf" else "jitad:audit", "event": body,
        }))
    return "\n".join(parts).encode("utf-8")
