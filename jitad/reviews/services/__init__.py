"""Review business logic that changes state; views, admin, API and tasks change state only through these."""
from .campaigns import campaign_close, campaign_open
from .decisions import item_decide
from .people import EligiblePerson, EligibleRead, eligible_people_read
from .removals import item_apply
from .sweep import reminders_send, removals_apply, reviews_sweep

__all__ = [
    "EligiblePerson",
    "EligibleRead",
    "campaign_close",
    "campaign_open",
    "eligible_people_read",
    "item_apply",
    "item_decide",
    "reminders_send",
    "removals_apply",
    "reviews_sweep",
]
