"""Break-glass reads: who may do what with a sealed account, and what each person may see.

Responders check out, approvers decide, staff administer. Responders and approvers are AD
groups named on the account (mirrored into Django groups at login), compared
case-insensitively, never Django permissions. Nobody approves their own checkout.
"""
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from jitad.accounts.groups import JSONListMatches, group_names, group_names_query

from .models import Checkout, Review, SealedAccount


def _in(user, names) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    wanted = {n.lower() for n in names or [] if isinstance(n, str)}
    return bool(wanted & group_names(user))


def is_responder(*, user, account: SealedAccount) -> bool:
    """True if ``user`` may ask to check ``account`` out."""
    return _in(user, account.responder_groups)


def is_account_approver(*, user, account: SealedAccount) -> bool:
    """True if ``user`` approves checkouts of ``account``."""
    return _in(user, account.approver_groups)


def can_decide_checkout(*, user, checkout: Checkout) -> bool:
    """An approver for the account, and not the person asking."""
    return user.pk != checkout.holder_id and is_account_approver(user=user, account=checkout.account)


def can_force_checkin(*, user, checkout: Checkout) -> bool:
    """Superusers, staff allowed to change checkouts, and the account's approvers."""
    if not user.is_active:
        return False
    if user.is_superuser or (user.is_staff and user.has_perm("breakglass.change_checkout")):
        return True
    return is_account_approver(user=user, account=checkout.account)


def accounts_approved_by(*, user) -> QuerySet:
    """Sealed accounts whose checkouts ``user`` approves."""
    if not user.is_authenticated or not user.is_active:
        return SealedAccount.objects.none()
    return SealedAccount.objects.filter(JSONListMatches("approver_groups", group_names_query(user)))


def accounts_responded_by(*, user) -> QuerySet:
    """Sealed accounts ``user`` may check out."""
    if not user.is_authenticated or not user.is_active:
        return SealedAccount.objects.none()
    return SealedAccount.objects.filter(JSONListMatches("responder_groups", group_names_query(user)))


def is_breakglass_approver(*, user) -> bool:
    """True if ``user`` approves checkouts of any sealed account (lets them into the admin)."""
    return accounts_approved_by(user=user).exists()


def privileged_roles_of(sender, *, user, **kwargs) -> list[str]:
    """Answer jitad.accounts.roles: approving checkouts or being able to check out is a privileged role."""
    roles = []
    if accounts_approved_by(user=user).exists():
        roles.append("break-glass approver")
    if accounts_responded_by(user=user).exists():
        roles.append("break-glass responder")
    return roles


def account_approvers(*, account: SealedAccount, exclude=None) -> list:
    """Active people who approve ``account``'s checkouts (for alerts), without ``exclude``."""
    names = [n for n in account.approver_groups or [] if isinstance(n, str) and n]
    if not names:
        return []
    groups = Group.objects.filter(reduce(or_, (Q(name__iexact=n) for n in names)))
    people = get_user_model().objects.filter(is_active=True, groups__in=groups).distinct().order_by("pk")
    if exclude is not None:
        people = people.exclude(pk=exclude.pk)
    return list(people)


def sealed_login_refused(sender, *, entry, **kwargs) -> str | None:
    """Receiver of accounts' ``portal_login_refusal_asked``: a sealed account never logs in to jitad.

    Matched by sAMAccountName and, when AD gave one, by objectGUID, so a renamed account
    is still refused.
    """
    match = Q(name__iexact=entry.sam_account_name)
    if entry.guid:
        match |= Q(user_guid__iexact=entry.guid)
    return "sealed_account" if SealedAccount.objects.filter(match).exists() else None


# -- what the pages show -----------------------------------------------------------------------
def sees_all_checkouts(*, user) -> bool:
    """Superusers and staff allowed to view checkouts see every account and checkout."""
    return user.is_superuser or (user.is_staff and user.has_perm("breakglass.view_checkout"))


def accounts_visible_to(*, user) -> QuerySet:
    """Sealed accounts ``user`` may see: all of them for staff who see all, else those they respond to or approve."""
    if sees_all_checkouts(user=user):
        return SealedAccount.objects.all()
    ids = set(accounts_responded_by(user=user).values_list("pk", flat=True))
    ids |= set(accounts_approved_by(user=user).values_list("pk", flat=True))
    return SealedAccount.objects.filter(pk__in=ids)


def checkout_visible(*, user, pk: int) -> Checkout | None:
    """Checkout ``pk`` if ``user`` holds it, approves its account or sees all; else None (as if missing)."""
    checkout = Checkout.objects.select_related("account", "holder").filter(pk=pk).first()
    if checkout is None or not (checkout.holder_id == user.pk or sees_all_checkouts(user=user)
                                or is_account_approver(user=user, account=checkout.account)):
        return None
    return checkout


def review_of(*, checkout: Checkout) -> Review | None:
    """The post-incident review of ``checkout``, if one was opened."""
    return Review.objects.filter(checkout=checkout).first()


@dataclass
class Dashboard:
    """The break-glass dashboard: one row per visible account, open reviews, the person's own checkouts."""

    rows: list[dict]
    reviews: list[Review]
    mine: list[Checkout]
    counts: dict[str, int]
    approver: bool
    staff_view: bool


def dashboard_for(*, user) -> Dashboard:
    """Every account ``user`` may use or approve (sealed, checked out by whom, exposed), and the reviews they see."""
    staff_view = sees_all_checkouts(user=user)
    accounts = list(accounts_visible_to(user=user).order_by("name"))
    live = {c.account_id: c for c in Checkout.objects.filter(account__in=accounts, state__in=Checkout.LIVE_STATES)
            .select_related("holder")}
    approves = set(accounts_approved_by(user=user).values_list("pk", flat=True))
    responds = set(accounts_responded_by(user=user).values_list("pk", flat=True))
    rows = [{"account": a, "checkout": live.get(a.pk), "responder": a.pk in responds, "approver": a.pk in approves}
            for a in accounts]
    review_scope = Q(checkout__holder=user)
    if staff_view:
        review_scope = Q()
    elif approves:
        review_scope |= Q(checkout__account__in=approves)
    reviews = list(Review.objects.filter(review_scope).exclude(state=Review.State.CLOSED)
                   .select_related("checkout__account", "checkout__holder").order_by("created_at")[:100])
    mine = list(Checkout.objects.filter(holder=user).select_related("account").order_by("-requested_at")[:20])
    counts = {s: sum(1 for r in rows if r["account"].state == s) for s in SealedAccount.State.values}
    return Dashboard(rows=rows, reviews=reviews, mine=mine, counts=counts, approver=bool(approves),
                     staff_view=staff_view)
