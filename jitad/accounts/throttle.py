"""Login throttling per client address and per account, kept in the database (docs/logins.md).

Three limits, each counted over the last JITAD_LOGIN_FAILURE_WINDOW_SECONDS of wrong passwords:

* **per client address** (password spraying: one address, many names): after
  JITAD_LOGIN_CLIENT_FREE_FAILURES wrong passwords, each next attempt from that address waits
  JITAD_LOGIN_CLIENT_DELAY_SECONDS, doubled per further failure, at most the window;
* **per account** (guessing one person's password): wrong passwords from every address the
  account has *not* completed a login from (password and MFA, JITAD_LOGIN_KNOWN_ADDRESS_DAYS)
  count together, and at JITAD_LOGIN_MAX_FAILURES the account pauses for all of them; an
  address it has logged in from has its own JITAD_LOGIN_MAX_FAILURES. So someone spraying a
  named approver from elsewhere pauses only "elsewhere": the approver still logs in from
  their usual address;
* **AD's lockout**: jitad never makes a JITAD_LOGIN_AD_LOCKOUT_THRESHOLD-th failed bind for an
  account in the window, whoever asks: the portal cannot be used to lock anyone out of Windows.

A paused attempt is refused before any password is checked (no bind, no hash), with the
seconds to wait. A correct password clears the account's count (AD resets its own then too),
not the client's. Each pause is audited once, not per refused attempt, and the security
channel hears of pauses at most once per window per kind.
"""
import ipaddress
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jitad.audit.services import audit_record

from .models import LoginFailure, LoginPauseNotice, LoginSource

log = logging.getLogger(__name__)

CLIENT, ACCOUNT, DIRECTORY = "client", "account", "directory"
SESSION_KEY = "jitad_login_key"  # the account counted at the password step, for LoginSource
ACCOUNT_ON_REQUEST = "_jitad_login_account"  # the account this request's attempt is counted against


@dataclass(frozen=True)
class Pause:
    """Why attempts are refused for now, and for how many more seconds."""

    scope: str  # CLIENT, ACCOUNT or DIRECTORY
    key: str
    seconds: int
    failures: int


def login_key(username: str) -> str:
    """The typed name, normalised: ``JITAD\\Alice``, ``alice@corp`` and ``alice`` are the same.

    An AD login is counted by its account's sAMAccountName instead (``login_pause(account=)``):
    a UPN need not start with it (``alice.smith@corp.example`` for ``asmith``)."""
    name = (username or "").strip().lower()
    if "\\" in name:
        name = name.split("\\", 1)[1]
    if "@" in name:
        name = name.rsplit("@", 1)[0]
    return name[:150] or "?"


# --- the client address ---------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def proxy_problems(entries) -> list[str]:
    """What is wrong with JITAD_TRUSTED_PROXIES entries (for the system check)."""
    problems = []
    for entry in entries:
        try:
            ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            problems.append(f"{entry!r} is not an IP address or network (CIDR)")
    return problems


def _trusted(address) -> bool:
    try:
        networks = _networks(tuple(settings.JITAD_TRUSTED_PROXIES))
    except ValueError:  # refused at start by the system check; never trust a list that does not parse
        return False
    return any(address.version == n.version and address in n for n in networks)


def _parse(value: str):
    try:
        return ipaddress.ip_address(value.strip().split("%", 1)[0])
    except ValueError:
        return None


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or from X-Forwarded-For when REMOTE_ADDR is a trusted proxy.

    X-Forwarded-For is read right to left, skipping trusted proxies: the first address not
    in JITAD_TRUSTED_PROXIES is the client (anything left of it the client could have typed).
    """
    meta = getattr(request, "META", {}) if request is not None else {}
    remote = _parse(meta.get("REMOTE_ADDR", "") or "")
    if remote is None:
        return ""
    address = remote
    if _trusted(remote):
        hops = [h for h in (meta.get("HTTP_X_FORWARDED_FOR", "") or "").split(",") if h.strip()]
        for hop in reversed(hops):
            parsed = _parse(hop)
            if parsed is None:
                break  # garbage: stop at the last address a trusted proxy vouched for
            address = parsed
            if not _trusted(parsed):
                break
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def client_key(request) -> str:
    """What the per-client counters are keyed by: an IPv4 address, or an IPv6 address's /64 (one site's share)."""
    ip = client_ip(request)
    return throttle_client_key(ipaddress.ip_address(ip)) if ip else "?"


# --- counting ----------------------------------------------------------------------------


def _window() -> timedelta:
    return timedelta(seconds=settings.JITAD_LOGIN_FAILURE_WINDOW_SECONDS)


def _wait_for_limit(times: list, limit: int, now) -> int:
    """Seconds until fewer than ``limit`` of ``times`` (ascending, within the window) remain in it."""
    if limit <= 0 or len(times) < limit:
        return 0
    leaves = times[len(times) - limit] + _window()
    return max(1, int((leaves - now).total_seconds() + 0.999))


def _known_clients(account: str, now) -> list[str]:
    since = now - timedelta(days=settings.JITAD_LOGIN_KNOWN_ADDRESS_DAYS)
    return list(LoginSource.objects.filter(account=account, last_login_at__gte=since).values_list("client", flat=True))


def _pause(account: str, client: str, now, *, besides: int | None = None) -> Pause | None:
    """The pause in force for ``account`` from ``client``; ``besides``: this attempt's own reservation, not counted."""
    since = now - _window()
    recent = LoginFailure.objects.filter(at__gte=since)
    if besides is not None:
        recent = recent.exclude(pk=besides)
    known = _known_clients(account, now)
    mine = recent.filter(account=account, account_cleared=False)
    times = list(mine.order_by("at").values_list("at", flat=True))
    threshold = settings.JITAD_LOGIN_AD_LOCKOUT_THRESHOLD
    if threshold > 0:
        wait = _wait_for_limit(times, threshold - 1, now)
        if wait:
            return Pause(DIRECTORY, account, wait, len(times))
    limit = settings.JITAD_LOGIN_MAX_FAILURES
    if client in known:
        pair = list(mine.filter(client=client).order_by("at").values_list("at", flat=True))
        wait = _wait_for_limit(pair, limit, now)
        # A known address is its own pool: other addresses' failures (an office's NAT included) do not pause it.
        return Pause(ACCOUNT, account, wait, len(pair)) if wait else None
    pool = list(mine.exclude(client__in=known).order_by("at").values_list("at", flat=True))
    wait = _wait_for_limit(pool, limit, now)
    if wait:
        return Pause(ACCOUNT, account, wait, len(pool))
    ours = list(recent.filter(client=client).order_by("-at").values_list("at", flat=True))
    free = settings.JITAD_LOGIN_CLIENT_FREE_FAILURES
    if len(ours) >= free:
        delay = min(settings.JITAD_LOGIN_CLIENT_DELAY_SECONDS * 2 ** (len(ours) - free), _window().total_seconds())
        left = (ours[0] + timedelta(seconds=delay) - now).total_seconds()
        if left > 0:
            return Pause(CLIENT, client, max(1, int(left + 0.999)), len(ours))
    return None


RESERVATION = "_jitad_login_reservation"


def _account(request, username: str) -> str:
    """What this attempt counts against: the account the backend resolved, else the typed name normalised."""
    resolved = getattr(request, ACCOUNT_ON_REQUEST, "") if request is not None else ""
    return resolved or login_key(username)


def login_pause(*, request, username: str, account: str = "") -> Pause | None:
    """The pause that refuses this attempt now, or None; a refusal is noted (audited once per pause).

    ``account``: the directory account ``username`` names (its sAMAccountName), so every way of
    typing one account (name, DOMAIN\\name, UPN, any case) is counted together, as AD counts
    its failed binds; without it, the typed name normalised. It is kept on the request for the
    failure or success that follows.

    An attempt that may go ahead first reserves its row, counted as a failure until the password
    proves right: attempts racing in parallel each see the others' reservations, so together
    they never get past a limit (AD's lockout above all) that one by one they could not.
    """
    account, client = login_key(account or username), client_key(request)
    if request is not None:
        setattr(request, ACCOUNT_ON_REQUEST, account)
    now = timezone.now()
    mine = None
    if request is not None:
        mine = LoginFailure.objects.create(at=now, account=account, client=client).pk
    pause = _pause(account, client, now, besides=mine)
    if pause is not None:
        if mine is not None:
            LoginFailure.objects.filter(pk=mine).delete()  # a refused attempt checked nothing: it does not count
        _notice(pause, client=client, refused=True)
    elif mine is not None:
        setattr(request, RESERVATION, mine)
    return pause


def _reservation(request) -> int | None:
    return getattr(request, RESERVATION, None) if request is not None else None


def login_attempt_void(*, request) -> None:
    """No password was checked after all (no DC answered): the attempt's reservation does not count."""
    mine = _reservation(request)
    if mine is not None:
        LoginFailure.objects.filter(pk=mine).delete()
        delattr(request, RESERVATION)


def login_failure_record(*, request, username: str) -> None:
    """Count a wrong password (the attempt's reservation stays); if that starts a pause, audit it once."""
    account, client = _account(request, username), client_key(request)
    now = timezone.now()
    if _reservation(request) is None or not LoginFailure.objects.filter(pk=_reservation(request)).exists():
        LoginFailure.objects.create(at=now, account=account, client=client)
    if request is not None and hasattr(request, RESERVATION):
        delattr(request, RESERVATION)
    LoginFailure.objects.filter(at__lt=now - _window()).delete()  # indexed; keeps the table to one window
    pause = _pause(account, client, now)
    if pause is not None:
        _notice(pause, client=client, refused=False)


def login_success_record(*, request, username: str) -> None:
    """A correct password: the account's wrong passwords stop counting against it (not against their clients)."""
    account = _account(request, username)
    login_attempt_void(request=request)
    LoginFailure.objects.filter(account=account, account_cleared=False).update(account_cleared=True)
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = account


def login_source_remember(*, request, user) -> None:
    """The person completed a login (password and MFA) from this address: it counts as theirs from now on."""
    client = client_key(request)
    if client == "?":
        return
    now = timezone.now()
    accounts = {login_key(user.get_username())}
    typed = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    if typed:
        accounts.add(typed)
    for account in accounts:
        LoginSource.objects.update_or_create(account=account, client=client, defaults={"last_login_at": now})
    LoginSource.objects.filter(last_login_at__lt=now - timedelta(days=settings.JITAD_LOGIN_KNOWN_ADDRESS_DAYS)).delete()


def login_throttle_status() -> list[dict]:
    """Accounts and client addresses with wrong passwords in the window, most first (for operators)."""
    from django.db.models import Count, Max

    recent = LoginFailure.objects.filter(at__gte=timezone.now() - _window())
    rows = [{"scope": ACCOUNT, "key": r["account"], "failures": r["n"], "last": r["last"]}
            for r in recent.filter(account_cleared=False).values("account").annotate(n=Count("id"), last=Max("at"))]
    rows += [{"scope": CLIENT, "key": r["client"], "failures": r["n"], "last": r["last"]}
             for r in recent.values("client").annotate(n=Count("id"), last=Max("at"))]
    return sorted(rows, key=lambda r: (-r["failures"], r["scope"], r["key"]))


def login_throttle_clear(*, account: str = "", client: str = "", actor: str, reason: str = "") -> int:
    """End the pauses of ``account`` (its wrong passwords stop counting, as after a right password) or of
    ``client`` (its wrong passwords are forgotten); audited. Returns how many failures stopped counting."""
    if bool(account) == bool(client):
        raise ValueError("name one account or one client address")
    with transaction.atomic():
        if account:
            key = login_key(account)
            count = LoginFailure.objects.filter(account=key, account_cleared=False).update(account_cleared=True)
            scope = ACCOUNT
        else:
            address = _parse(client)
            if address is None and "/" not in client:
                raise ValueError(f"{client!r} is not an IP address")
            key = client if address is None else throttle_client_key(address)
            count = LoginFailure.objects.filter(client=key).delete()[0]
            scope = CLIENT
        LoginPauseNotice.objects.filter(scope__in=(scope, DIRECTORY) if account else (scope,), key=key).delete()
        audit_record(actor=actor, action="account.login_pause_cleared", object_type="login_" + scope, object_id=key[:64],
                     reason=reason[:200], data={"failures": count})
    return count


def throttle_client_key(address) -> str:
    """The counter key of a parsed address (IPv6 by its /64)."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


# --- audit and alerts, once per pause -------------------------------------------------------


def _notice(pause: Pause, *, client: str, refused: bool) -> None:
    """Audit a pause the first time it is seen in a window; later refusals only count on its row."""
    now = timezone.now()
    with transaction.atomic():
        row = LoginPauseNotice.objects.select_for_update().filter(scope=pause.scope, key=pause.key[:150]).first()
        if row is not None and row.noticed_at >= now - _window():
            LoginPauseNotice.objects.filter(pk=row.pk).update(refused=row.refused + int(refused))
            return
        previous = row.refused if row is not None else 0
        try:
            with transaction.atomic():
                if row is None:
                    LoginPauseNotice.objects.create(scope=pause.scope, key=pause.key[:150], noticed_at=now, refused=int(refused))
                else:
                    LoginPauseNotice.objects.filter(pk=row.pk).update(noticed_at=now, refused=int(refused))
        except IntegrityError:  # another process noticed the same pause at the same moment: theirs audits
            return
        audit_record(actor="jitad", action="account.login_paused", object_type="login_" + pause.scope,
                     object_id=pause.key[:64], reason=pause.scope,
                     data={"seconds": pause.seconds, "failures": pause.failures, "client": client,
                           "refused_in_previous_pause": previous})
        _alert(pause, now)
    log.warning("login pause (%s %s): %d failures, %d s", pause.scope, pause.key, pause.failures, pause.seconds)


def _alert(pause: Pause, now) -> None:
    """At most one security-channel alert per window for each kind of pause, however many keys pause."""
    from jitad.notifications.services import alert_raise

    scope = "alert:" + pause.scope
    row, created = LoginPauseNotice.objects.select_for_update().get_or_create(scope=scope, key="*",
                                                                              defaults={"noticed_at": now})
    if not created and row.noticed_at >= now - _window():
        LoginPauseNotice.objects.filter(pk=row.pk).update(refused=row.refused + 1)
        return
    if not created:
        LoginPauseNotice.objects.filter(pk=row.pk).update(noticed_at=now, refused=0)
    what = {CLIENT: f"the client address {pause.key} made {pause.failures} wrong logins (password spraying?)",
            ACCOUNT: f"the account '{pause.key}' had {pause.failures} wrong passwords (someone guessing it?)",
            DIRECTORY: f"the account '{pause.key}' had {pause.failures} wrong passwords, one short of AD's lockout"}[pause.scope]
    alert_raise(event="login.paused", severity="warning", subject=f"Logins paused: {what}"[:200],
                body=f"jitad paused logins because {what}. Further pauses of this kind within "
                     f"{settings.JITAD_LOGIN_FAILURE_WINDOW_SECONDS} seconds are audited (account.login_paused) "
                     "but not alerted. See docs/logins.md.",
                object_type="login_" + pause.scope, object_id=pause.key[:64])
