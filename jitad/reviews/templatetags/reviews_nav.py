"""``{% load reviews_nav %}{% if request.user|reviews_waiting %}``: whether the nav shows the Reviews page."""
from django import template

from ..selectors import is_reviewer_anywhere

register = template.Library()


@register.filter
def reviews_waiting(user) -> bool:
    """True if ``user`` reviews some open campaign (two small queries)."""
    return is_reviewer_anywhere(user=user)
