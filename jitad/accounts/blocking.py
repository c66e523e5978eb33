"""What a blocked person still holds elsewhere, ended by the apps above accounts.

Accounts sits below elevation and break-glass, so blocking a person cannot call their
services. It sends ``account_blocked`` instead, inside the blocking transaction: each of
those apps connects a receiver (in its AppConfig.ready) that ends what the person holds
there and answers how many of each thing it ended. A receiver's error propagates and
rolls the block back, exactly as a direct call would.
"""
from collections import Counter

from django.dispatch import Signal

# Sent with ``user``, ``actor`` and ``reason``; each receiver returns a dict of counts
# keyed by what it ended ("requests_cancelled", "grants_revoked", "checkouts_ended").
account_blocked = Signal()


def account_holdings_end(*, user, actor: str, reason: str) -> Counter:
    """Ask every app to end what ``user`` holds there; the counts they answered, summed."""
    counts = Counter()
    for _receiver, answer in account_blocked.send(sender=type(user), user=user, actor=actor, reason=reason):
        counts.update(answer or {})
    return counts
