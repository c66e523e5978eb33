"""Template context: how many requests wait for the signed-in approver's decision (the portal nav).

Lazy: a page that never shows the nav (an htmx fragment, a JSON answer) runs no query. For
someone who approves nothing it costs the two small queries of ``is_approver_anywhere``
and shows nothing; for an approver one COUNT more.
"""
from django.utils.functional import SimpleLazyObject

from .selectors.approvers import is_approver_anywhere, requests_decidable_by


class ApprovalsWaiting:
    """``approver``: whether to show the link at all; ``count``: requests waiting for this person."""

    def __init__(self, user):
        self.approver = is_approver_anywhere(user=user)
        self.count = requests_decidable_by(user=user).count() if self.approver else 0


def approvals(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    is_verified = getattr(user, "is_verified", None)
    if is_verified is None or not is_verified():
        return {}
    return {"approvals_waiting": SimpleLazyObject(lambda: ApprovalsWaiting(user))}
