"""Changelist filters of the approval queue and of the grants view.

The queue and grant filters have a default (what needs action, what is live now), so
the page opens on the work, and offer no "All" link that would silently drop it.
"""
import re
from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from ..models import AccessRequest, Grant
from ..selectors.approvers import requests_decidable_by

ID = re.compile(r"[0-9]{1,18}")  # an id that fits a 64-bit column; anything else filters nothing


class DefaultedFilter(admin.SimpleListFilter):
    """A filter whose absence means ``default`` rather than "no filter"."""

    default = ""

    def value(self):
        return super().value() or self.default

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class QueueFilter(DefaultedFilter):
    title = "queue"
    parameter_name = "queue"
    default = "mine"

    def lookups(self, request, model_admin):
        return [("mine", "Waiting for my decision"), ("pending", "All pending"),
                ("decided", "Decided (history)"), ("all", "Everything")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "mine":
            return requests_decidable_by(user=request.user, queryset=queryset)
        if value == "pending":
            return queryset.filter(state=AccessRequest.State.PENDING)
        if value == "decided":
            return queryset.exclude(state=AccessRequest.State.PENDING)
        return queryset


class WaitingFilter(admin.SimpleListFilter):
    title = "waiting"
    parameter_name = "waiting"
    BANDS = {"lt1h": (None, 1), "1to8h": (1, 8), "8to24h": (8, 24), "gt24h": (24, None)}

    def lookups(self, request, model_admin):
        return [("lt1h", "under an hour"), ("1to8h", "1 to 8 hours"), ("8to24h", "8 to 24 hours"),
                ("gt24h", "over a day")]

    def queryset(self, request, queryset):
        band = self.BANDS.get(self.value())
        if band is None:
            return queryset
        now, (low, high) = timezone.now(), band
        if low is not None:
            queryset = queryset.filter(created_at__lte=now - timedelta(hours=low))
        if high is not None:
            queryset = queryset.filter(created_at__gt=now - timedelta(hours=high))
        return queryset


class _PendingRelatedFilter(admin.SimpleListFilter):
    """Offers the targets or requesters that have pending requests in view (a short list);
    any id still works in the URL, and search finds the rest."""

    field = ""  # "target" | "requester"
    label = ""

    def lookups(self, request, model_admin):
        rows = (
            model_admin.get_queryset(request)
            .filter(state=AccessRequest.State.PENDING)
            .order_by(self.label)
            .values_list(f"{self.field}_id", self.label)
            .distinct()[:50]
        )
        return [(str(pk), name) for pk, name in rows]

    def queryset(self, request, queryset):
        value = self.value()
        if value and ID.fullmatch(value):
            return queryset.filter(**{f"{self.field}_id": int(value)})
        return queryset


class TargetFilter(_PendingRelatedFilter):
    title = "target (with pending requests)"
    parameter_name = "target"
    field, label = "target", "target__name"


class RequesterFilter(_PendingRelatedFilter):
    title = "requester (with pending requests)"
    parameter_name = "requester"
    field, label = "requester", "requester__username"


class GrantViewFilter(DefaultedFilter):
    title = "view"
    parameter_name = "view"
    default = "now"
    NOW = (Grant.State.SCHEDULED, Grant.State.APPROVED, Grant.State.GRANTING, Grant.State.ACTIVE, Grant.State.UNVERIFIED,
           Grant.State.REVOKING, Grant.State.GRANT_FAILED, Grant.State.REVOKE_FAILED)
    FAILED = (Grant.State.GRANT_FAILED, Grant.State.UNVERIFIED, Grant.State.REVOKE_FAILED)
    SERVER_NOT_CONFIRMED = (Grant.HostCheck.STILL_ADMIN, Grant.HostCheck.FAILED)

    def lookups(self, request, model_admin):
        return [("now", "Active or scheduled now (failures first)"), ("failed", "Failed or unverified"),
                ("server", "Not confirmed on the server after revocation"), ("ended", "Ended"), ("all", "Everything")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "now":
            return queryset.filter(state__in=self.NOW)
        if value == "failed":
            return queryset.filter(state__in=self.FAILED)
        if value == "server":
            return queryset.filter(state=Grant.State.REVOKED, host_revoke_check__in=self.SERVER_NOT_CONFIRMED)
        if value == "ended":
            return queryset.filter(state=Grant.State.REVOKED)
        return queryset
