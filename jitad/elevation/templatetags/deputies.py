"""``{% deputies_shown as flag %}``: whether the portal's nav offers the Deputies page to the reader."""
from django import template

from ..selectors.delegations import shows_delegations

register = template.Library()


@register.simple_tag(takes_context=True)
def deputies_shown(context) -> bool:
    """True for an approver in their own right and for a deputy of a delegation not yet ended (once per request)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None:
        return False
    if not hasattr(request, "_jitad_shows_deputies"):
        request._jitad_shows_deputies = shows_delegations(user=user)
    return request._jitad_shows_deputies
