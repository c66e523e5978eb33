"""What reviewers are told: a campaign opened, a reminder before its deadline. Recorded in the
caller's transaction and sent after commit (jitad.notifications), like every other notice."""
from django.conf import settings
from django.urls import reverse

from jitad.humantime import when
from jitad.notifications.services import notification_create

from ..models import ReviewCampaign


def _page() -> str:
    return settings.JITAD_BASE_URL + reverse("reviews:page")


def notice_campaign_opened(*, campaign: ReviewCampaign, reviewers: list, items: int):
    """Tell the reviewers a review waits for them, and what happens to what they leave undecided."""
    policy, default = campaign.policy, campaign.rules.get("default", "remove")
    body = (f"Review #{campaign.pk} asks whether {items} person(s) should stay eligible under policy {policy.name}. "
            f"Keep or remove each before {when(campaign.deadline)}; whoever is left undecided then is "
            f"{'removed' if default == 'remove' else 'kept'} (the policy's default). You cannot decide about yourself.")
    return notification_create(event="review.opened", subject=f"Review: who may request under {policy.name} "
                                                               f"(until {when(campaign.deadline)})",
                               body=body, link=_page(), object_type="review", object_id=campaign.pk, people=reviewers)


def notice_campaign_reminder(*, campaign: ReviewCampaign, reviewers: list, undecided: int):
    """Remind the reviewers who still have items to decide."""
    policy, default = campaign.policy, campaign.rules.get("default", "remove")
    body = (f"{undecided} person(s) in review #{campaign.pk} (policy {policy.name}) are still undecided. "
            f"At {when(campaign.deadline)} they are {'removed' if default == 'remove' else 'kept'} "
            "(the policy's default) unless a reviewer decides first.")
    return notification_create(event="review.reminder", subject=f"Reminder: review of {policy.name} closes "
                                                                 f"{when(campaign.deadline)}",
                               body=body, link=_page(), object_type="review", object_id=campaign.pk, people=reviewers)
