"""Who may decide a request, and when enough of them have agreed.

Approvers are defined by policy, never by Django permissions: a request for ``target``
under ``policy`` may be decided by members of the policy's approver groups and of the
target's own approver groups (AD group names, mirrored into Django groups at login),
except the requester. N-of-M means N distinct people; with
``Policy.distinct_approver_groups`` each approval must also stand for a different group
(a peer and a manager), which is a matching problem: a person in both groups counts for
whichever group the others leave open.
"""
from functools import reduce
from operator import or_

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from jitad.accounts.groups import JSONListMatches, group_names, group_names_query

from ..models import AccessRequest, Approval, Delegation, Policy, Target
from .delegations import delegations_running, groups_approve_anywhere


def approver_groups_for(*, policy: Policy, target: Target) -> list[str]:
    """The AD groups whose members may decide requests for ``target`` under ``policy``."""
    seen, names = set(), []
    for name in [*(policy.approver_groups or []), *(target.approver_groups or [])]:
        if isinstance(name, str) and name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return names


def stage_groups_for(*, stages: list[dict], index: int, target: Target, escalated: bool = False) -> list[str]:
    """Who may decide stage ``index`` of ``stages`` (AccessRequest.stage_groups): the stage's groups, the
    target's approver groups on the first stage only, and the escalation groups once escalated with
    ``add_as_approvers``."""
    if index >= len(stages):
        return []
    stage = stages[index]
    names = list(stage.get("approver_groups") or [])
    if index == 0:
        names += list(target.approver_groups or [])
    escalation = stage.get("escalation") or {}
    if escalated and escalation.get("add_as_approvers"):
        names += list(escalation.get("groups") or [])
    seen, out = set(), []
    for name in names:
        if isinstance(name, str) and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


def open_stage_groups(request: AccessRequest) -> list[str]:
    """The groups that may decide ``request``'s open stage now; a request made before stages were
    recorded (``stages`` empty) is one stage decided by its policy's and target's approver groups."""
    if request.stages:
        return list(request.stage_groups or [])
    return approver_groups_for(policy=request.policy, target=request.target)


def open_stage_rule(request: AccessRequest) -> tuple[int, bool]:
    """(approvals required, distinct groups) of ``request``'s open stage."""
    if request.stages and request.stage < len(request.stages):
        stage = request.stages[request.stage]
        return int(stage.get("approvals_required", 1)), bool(stage.get("distinct_groups"))
    return request.approvals_required, request.policy.distinct_approver_groups


def approver_groups_of(*, user, request: AccessRequest, groups: set[str] | None = None) -> list[str]:
    """The open stage's approver groups ``user`` is in (in their own right), spelt as the policy or target spells them."""
    mine = group_names(user) if groups is None else groups
    return [g for g in open_stage_groups(request) if g.lower() in mine]


def decided_for(*, request: AccessRequest) -> set[int]:
    """Ids of the people who have decided ``request``, themselves or through a deputy (one decision per person)."""
    ids = set()
    for approver_id, behalf_id in request.approvals.values_list("approver_id", "on_behalf_of_id"):
        ids.add(approver_id)
        if behalf_id:
            ids.add(behalf_id)
    return ids


def deputy_for(*, user, request: AccessRequest, at=None) -> tuple[object, list[str]] | None:
    """(delegation, groups) when ``user`` may decide ``request``'s open stage as a deputy: a running
    delegation whose delegator's own groups meet the stage, neither of them the requester, and the
    delegator not yet decided (by themselves or through someone). None otherwise."""
    if user.pk == request.requester_id:
        return None
    decided = None
    for delegation in delegations_running(deputy=user, at=at):
        delegator = delegation.delegator
        if delegator.pk == request.requester_id:
            continue
        groups = approver_groups_of(user=delegator, request=request)
        if not groups:
            continue
        if decided is None:
            decided = decided_for(request=request)
        if delegator.pk in decided:
            continue
        return delegation, groups
    return None


def delegation_not_running_for(*, user, request: AccessRequest, at=None):
    """The latest delegation to ``user`` that would let them decide ``request``'s open stage if it ran now
    (ended, revoked, or not started yet), or None: to tell a deputy why they may not decide."""
    at = at or timezone.now()
    if user.pk == request.requester_id:
        return None
    candidates = (Delegation.objects.filter(deputy=user).exclude(delegator_id=request.requester_id)
                  .select_related("delegator").order_by("-ends_at", "-pk")[:10])
    for delegation in candidates:
        if not delegation.running(at) and approver_groups_of(user=delegation.delegator, request=request):
            return delegation
    return None


def approvers_to_notify(*, request: AccessRequest, names: list[str] | None = None) -> list:
    """Active users who may decide ``request``'s open stage (or are in ``names``) and have an e-mail
    address, with the deputies of those holding a running delegation; never the requester.

    Read with their id, user name and address only (what a notice sends to): a request told to
    sixty approvers builds sixty of them. Django groups mirror the AD groups at login; names
    compare case-insensitively.
    """
    names = open_stage_groups(request) if names is None else names
    if not names:
        return []
    User = get_user_model()
    groups = Group.objects.filter(reduce(or_, (Q(name__iexact=n) for n in names)))
    now = timezone.now()
    members = User.objects.filter(is_active=True, groups__in=groups).exclude(pk=request.requester_id)
    deputies = Delegation.objects.filter(
        delegator__in=members.values("pk"), starts_at__lte=now, ends_at__gt=now, revoked_at__isnull=True,
    ).values("deputy")
    return list(
        User.objects.filter(Q(pk__in=members.values("pk")) | Q(pk__in=deputies), is_active=True)
        .exclude(pk=request.requester_id).exclude(email="").distinct().order_by("pk")
        .only("pk", User.USERNAME_FIELD, User.get_email_field_name())
    )


def can_decide(*, user, request: AccessRequest, groups: set[str] | None = None) -> bool:
    """True if ``user`` may approve or deny ``request`` now: an approver of its open stage (or the deputy
    of one), and not its requester."""
    if not user.is_active or user.pk == request.requester_id:
        return False
    if approver_groups_of(user=user, request=request, groups=groups):
        return True
    return request.state == AccessRequest.State.PENDING and deputy_for(user=user, request=request) is not None


def can_revoke(*, user, grant) -> bool:
    """True if ``user`` may end ``grant`` early: a superuser, staff allowed to change grants,
    or an approver for the request behind it (taking a right away never needs more)."""
    if not user.is_active:
        return False
    if user.is_superuser or (user.is_staff and user.has_perm("elevation.change_grant")):
        return True
    request = grant.request
    mine = group_names(user)
    every = {g.lower() for stage in (request.stages or []) for g in stage.get("approver_groups") or []}
    every |= {g.lower() for g in approver_groups_for(policy=request.policy, target=request.target)}
    return bool(every & mine)


def approvals_counted(group_sets: list[list[str]], *, distinct_groups: bool) -> int:
    """How many approvals count towards N-of-M.

    ``group_sets`` holds, per approving person, the approver groups they were in. Each
    person counts once; with ``distinct_groups`` each group also counts once, and the
    answer is the size of a maximum matching of people to groups.
    """
    if not distinct_groups:
        return len(group_sets)
    options = [sorted({g.lower() for g in groups}) for groups in group_sets]
    holder: dict[str, int] = {}

    def place(person: int, tried: set[str]) -> bool:
        for group in options[person]:
            if group in tried:
                continue
            tried.add(group)
            if group not in holder or place(holder[group], tried):
                holder[group] = person
                return True
        return False

    return sum(1 for person in range(len(options)) if place(person, set()))


def approval_progress(request: AccessRequest) -> tuple[int, int]:
    """(approvals that count, approvals required) for ``request``, all stages together.

    A passed stage counts its full quota (a stage passed on silence too); the open stage counts
    its approvals."""
    approvals = [a for a in request.approvals.all() if a.decision == Approval.Decision.APPROVE]
    if not request.stages:
        sets = [a.approver_groups for a in approvals]
        return approvals_counted(sets, distinct_groups=request.policy.distinct_approver_groups), request.approvals_required
    return sum(p[0] for p in stage_progress(request, approvals=approvals)), request.approvals_required


def stage_progress(request: AccessRequest, approvals=None) -> list[tuple[int, int]]:
    """(approvals that count, approvals required) per stage of ``request``; a passed stage is full."""
    if approvals is None:
        approvals = [a for a in request.approvals.all() if a.decision == Approval.Decision.APPROVE]
    out = []
    for index, stage in enumerate(request.stages or []):
        required = int(stage.get("approvals_required", 1))
        if index < request.stage:
            out.append((required, required))
            continue
        sets = [a.approver_groups for a in approvals if a.stage == index]
        out.append((min(required, approvals_counted(sets, distinct_groups=bool(stage.get("distinct_groups")))), required))
    return out


# -- the same rules inside the database, for lists -------------------------------------------
def _running_delegations(*, user, now=None) -> QuerySet:
    """``user``'s running delegations as a subquery (no query of its own)."""
    now = now or timezone.now()
    return Delegation.objects.filter(deputy=user, starts_at__lte=now, ends_at__gt=now, revoked_at__isnull=True,
                                     delegator__is_active=True)


def _names_with_delegators(user) -> QuerySet:
    """``user``'s group names and those of the people they stand in for now, lowered (a subquery)."""
    delegators = _running_delegations(user=user).values("delegator")
    return (Group.objects.filter(Q(user=user) | Q(user__in=delegators)).annotate(key=Lower("name"))
            .values("key").distinct())


def approver_scope(*, user, resolved: bool = False) -> Q:
    """A filter on AccessRequest: requests whose policy or target names one of ``user``'s groups (or, for a
    deputy, of the people they stand in for) as approvers, or pending ones whose open stage does.

    By default the group names, policies and targets are subqueries. ``resolved=True`` looks
    them up first (three small queries) and puts the values in the filter: PostgreSQL then walks
    a big table in index order through an EXISTS instead of hashing all of it, which the grants
    view needs; and the plan of a filter over every request stays cheap (with the subqueries
    repeated per pending row, its estimated cost passed PostgreSQL's JIT threshold, and compiling
    the plan took longer than running it), which the REST API's list needs.
    """
    groups = _names_with_delegators(user)
    if resolved:
        groups = list(groups.values_list("key", flat=True))
    policies = Policy.objects.filter(JSONListMatches("approver_groups", groups)).values("id")
    targets = Target.objects.filter(JSONListMatches("approver_groups", groups)).values("id")
    if resolved:
        policies = [row["id"] for row in policies]
        targets = [row["id"] for row in targets]
    # A policy file's approver_groups hold every stage's groups already; a pending request's open stage is
    # tested too, for policies whose stages or windows were set another way.
    return (Q(policy__in=policies) | Q(target__in=targets)
            | Q(state=AccessRequest.State.PENDING) & Q(JSONListMatches("stage_groups", groups)))


def is_approver_anywhere(*, user) -> bool:
    """True if ``user`` is an approver (or a deputy of one) under any policy or for any target (two cheap queries)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return groups_approve_anywhere(_names_with_delegators(user))


def privileged_roles_of(sender, *, user, **kwargs) -> list[str]:
    """Answer jitad.accounts.roles: approving elevation requests is a privileged role."""
    return ["elevation approver"] if is_approver_anywhere(user=user) else []


def _decidable_filter(user) -> Q:
    """Pending requests whose open stage ``user`` may decide: in their own right, as the deputy of someone
    who may (not the requester, not yet decided), or, for a request made before stages were recorded,
    through its policy's or target's approver groups."""
    own = group_names_query(user)
    behalf_done = Approval.objects.filter(Q(approver=OuterRef("delegator")) | Q(on_behalf_of=OuterRef("delegator")),
                                          request=OuterRef(OuterRef(OuterRef("pk"))))
    delegators = (_running_delegations(user=user).exclude(delegator=OuterRef(OuterRef("requester")))
                  .exclude(Exists(behalf_done)).values("delegator"))
    deputy_names = Group.objects.filter(user__in=delegators).annotate(key=Lower("name")).values("key")
    legacy_policies = Policy.objects.filter(JSONListMatches("approver_groups", own)).values("id")
    legacy_targets = Target.objects.filter(JSONListMatches("approver_groups", own)).values("id")
    return (Q(JSONListMatches("stage_groups", own)) | Q(JSONListMatches("stage_groups", deputy_names))
            | (Q(stages=[]) & (Q(policy__in=legacy_policies) | Q(target__in=legacy_targets))))


def requests_decidable_by(*, user, queryset: QuerySet | None = None) -> QuerySet:
    """Pending requests waiting for ``user``'s decision: their open stage is theirs (or a delegator's) to
    decide, not their own, not yet decided by them or for them, from a requester who is not blocked."""
    qs = AccessRequest.objects.all() if queryset is None else queryset
    mine = Approval.objects.filter(Q(approver=user) | Q(on_behalf_of=user), request=OuterRef("pk"))
    return (
        qs.filter(_decidable_filter(user), state=AccessRequest.State.PENDING, requester__is_active=True)
        .exclude(requester=user)
        .exclude(Exists(mine))
    )


def stage_rows(request: AccessRequest, approvals=None) -> list[dict]:
    """The request's stages for the pages: name, groups, approvals counted of required, state
    (passed / open / waiting), escalation and timeout, and the decisions made in each (deputies named)."""
    if approvals is None:
        approvals = list(request.approvals.select_related("approver", "on_behalf_of").order_by("at"))
    counted = stage_progress(request, approvals=[a for a in approvals if a.decision == Approval.Decision.APPROVE])
    rows = []
    for index, stage in enumerate(request.stages or []):
        if index < request.stage:
            state = "passed"
        elif index == request.stage and request.state == AccessRequest.State.PENDING:
            state = "open"
        else:
            state = "waiting" if request.state == AccessRequest.State.PENDING else "not reached"
        decisions = []
        for a in approvals:
            if a.stage != index:
                continue
            name = a.approver.get_username()
            if a.on_behalf_of_id:
                name += f" for {a.on_behalf_of.get_username()}"
            decisions.append(f"{name} ({a.decision})")
        rows.append({
            "number": index + 1, "name": stage.get("name", ""), "state": state,
            "approvals": counted[index][0], "required": counted[index][1],
            "groups": request.stage_groups if state == "open" else list(stage.get("approver_groups") or []),
            "distinct_groups": bool(stage.get("distinct_groups")),
            "escalation": stage.get("escalation"), "timeout": stage.get("timeout"), "decisions": decisions,
        })
    return rows


def stage_summary(request: AccessRequest, approvals=None) -> str:
    """"stage 1 of 2 (peer): 0 of 1" for a pending request's open stage; "" when there is none."""
    if request.state != AccessRequest.State.PENDING or not request.stages or request.stage >= len(request.stages):
        return ""
    if approvals is None:
        approvals = [a for a in request.approvals.all() if a.decision == Approval.Decision.APPROVE]
    done, required = stage_progress(request, approvals=approvals)[request.stage]
    return f"stage {request.stage + 1} of {len(request.stages)} ({request.stages[request.stage].get('name', '')}): " \
           f"{done} of {required}"
