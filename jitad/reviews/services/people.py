"""Who a policy makes eligible, read from AD: the people a campaign reviews (outside any transaction).

The members of each of the policy's eligible groups (at any depth of nesting) and of its
review-managed group, plus the users it names; each once, with every way they are eligible.
"""
import logging
from dataclasses import dataclass, field

from jitad import directory
from jitad.elevation.models import Policy

log = logging.getLogger(__name__)


@dataclass
class EligiblePerson:
    """One person a review asks about: the name jitad knows them by, their AD object, how they are eligible."""

    username: str
    dn: str = ""
    mail: str = ""
    via: list[str] = field(default_factory=list)


@dataclass
class EligibleRead:
    """What AD said: the people, and the groups or users the policy names that AD does not have."""

    people: list[EligiblePerson]
    not_found: list[str]


def eligible_people_read(*, policy: Policy, rules: dict) -> EligibleRead:
    """Everyone ``policy`` makes eligible, read through the directory seam; raises DirectoryUnavailable."""
    people: dict[str, EligiblePerson] = {}
    not_found: list[str] = []

    def add(user: directory.DirectoryUser, via: str) -> None:
        name = user.sam_account_name.lower()
        person = people.setdefault(name, EligiblePerson(username=name, dn=user.dn, mail=user.mail))
        if via not in person.via:
            person.via.append(via)

    with directory.connect() as d:
        for name in policy.eligible_groups or []:
            try:
                group_dn = d.find_group_dn(name)
                for user in d.group_people(group_dn):
                    add(user, name)
            except directory.DirectoryUnavailable:
                raise
            except directory.DirectoryRejected as e:  # no such group (or two): nobody through it
                log.warning("review of policy %s: eligible group %r not read: %s", policy.name, name, e)
                not_found.append(name)
        managed = (rules or {}).get("managed_group") or ""
        if managed:
            try:
                for user in d.group_people(managed):
                    add(user, directory.group_label(managed))
            except directory.DirectoryUnavailable:
                raise
            except directory.DirectoryRejected as e:
                log.warning("review of policy %s: managed group %r not read: %s", policy.name, managed, e)
                not_found.append(managed)
        for name in policy.eligible_users or []:
            try:
                add(d.find_user(name), "user")
            except directory.DirectoryUnavailable:
                raise
            except directory.DirectoryRejected:
                # Named in the policy but not in AD (a local account): reviewed by name.
                person = people.setdefault(name.lower(), EligiblePerson(username=name.lower()))
                if "user" not in person.via:
                    person.via.append("user")
    return EligibleRead(people=sorted(people.values(), key=lambda p: p.username), not_found=not_found)
