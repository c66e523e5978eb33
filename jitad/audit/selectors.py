"""Reading the audit trail: the pruning checkpoint, searches by object name, SIEM destinations' state."""
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q, QuerySet

from .models import AuditChainHead, AuditCheckpoint, AuditEvent, SiemCursor

# Higher apps register, in their AppConfig.ready, a resolver: a search term -> [(object_type, ids)]
# of the objects it names (a break-glass account's name -> the account and its checkouts). The
# audit app stays below them: it never imports them, they tell it. ``ids`` is a list, or a
# queryset of one column of ids as text (``Cast("pk", CharField())``), kept as a subquery.
_NAME_RESOLVERS: list[Callable[[str], list[tuple[str, object]]]] = []


def audit_name_resolver_register(resolver: Callable[[str], list[tuple[str, object]]]) -> None:
    """Let the audit search find events of objects named ``term`` (called from an AppConfig.ready)."""
    if resolver not in _NAME_RESOLVERS:
        _NAME_RESOLVERS.append(resolver)


def audit_objects_named(term: str) -> Q:
    """A filter matching events of every object the registered resolvers find for ``term``."""
    q = Q(pk__in=[])
    for resolver in _NAME_RESOLVERS:
        for object_type, ids in resolver(term):
            if not isinstance(ids, QuerySet):
                ids = [str(i) for i in ids]
                if not ids:
                    continue
            q |= Q(object_type=object_type, object_id__in=ids)
    return q


def audit_search(qs: QuerySet, term: str) -> QuerySet:
    """Events of ``qs`` whose actor contains ``term``, whose object id is ``term``, or whose object ``term`` names.

    The free text (reasons) is left out on purpose: a substring search over every reason
    scans the whole table; the action and object type have filters of their own.
    """
    term = term.strip()
    if not term:
        return qs
    return qs.filter(Q(actor__icontains=term) | Q(object_id=term) | audit_objects_named(term))


def audit_recorded_since(*, action: str, object_type: str, object_id, reason: str, since) -> bool:
    """Whether an event of ``action`` on the object, with ``reason``, was recorded at or after ``since``."""
    return AuditEvent.objects.filter(object_type=object_type, object_id=str(object_id), action=action, reason=reason,
                                     at__gte=since).exists()


def audit_checkpoint() -> AuditCheckpoint | None:
    """The pruning checkpoint, or None when nothing was ever pruned."""
    return AuditCheckpoint.objects.filter(pk=1, pruned_total__gt=0).first()


def head_seq() -> int:
    """The seq of the newest event (0 for an empty chain)."""
    head = AuditChainHead.objects.filter(pk=1).first()
    return head.count if head else 0


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (6514 if parts.scheme.startswith("syslog") else 443)
    return f"{parts.hostname}:{port}"


def siem_destinations() -> list[dict]:
    """Each configured SIEM destination with how far it has been sent (no credentials)."""
    head = head_seq()
    cursors = {c.name: c for c in SiemCursor.objects.all()}
    checkpoint = AuditCheckpoint.objects.filter(pk=1).first()
    start = checkpoint.seq if checkpoint else 0
    out = []
    for name, dest in sorted(settings.JITAD_SIEM_DESTINATIONS.items()):
        cursor = cursors.get(name)
        last = cursor.last_seq if cursor else start
        out.append({
            "name": name,
            "transport": dest["transport"],
            "format": dest["format"],
            "endpoint": _endpoint(dest["url"]),
            "last_seq": last,
            "head_seq": head,
            "lag_events": max(0, head - last),
            "last_sent_at": cursor.last_sent_at if cursor else None,
            "last_error": cursor.last_error if cursor else "",
        })
    return out


def events_after(seq: int, *, limit: int) -> list[AuditEvent]:
    """Up to ``limit`` events with seq above ``seq``, in chain order."""
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq")[:limit])
