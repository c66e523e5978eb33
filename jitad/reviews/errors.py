"""What the review services refuse a person (a step they may not take), never faults."""
from jitad.errors import RequestRefused


class ReviewRefused(RequestRefused):
    """A refused review step. Codes: ``decision_invalid``, ``comment_too_long``, ``mfa_required`` (400);
    ``not_reviewer``, ``self_review`` (403); ``already_decided``, ``campaign_closed`` (409)."""


FORBIDDEN = {"not_reviewer", "self_review"}
CONFLICT = {"already_decided", "campaign_closed"}
