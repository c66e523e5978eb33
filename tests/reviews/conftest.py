"""Fixtures for review tests: AD groups of real people in the session's OU, and policies that review."""
import uuid

import pytest


@pytest.fixture
def ad_group(jit_ou):
    """An AD group (in the session OU) holding the given jitad users' AD accounts: ``ad_group(alice, bob)``.
    Returns (sAMAccountName, DN)."""
    from jitad import directory

    def make(*users, prefix="Elig"):
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        with directory.connect() as d:
            dn = d.ensure_group(name, jit_ou)
            for user in users:
                d.ensure_member(dn, d.find_user(user.username).dn)
        return name, dn

    return make


@pytest.fixture
def review_policy():
    """A manual policy over a new target, eligible through ``groups``, reviewed by ``reviewers``."""
    from tests.elevation.builders import policy, target

    def make(*, groups=(), users=(), reviewers=("Reviewers",), default="remove", every=7 * 24 * 60, deadline=24 * 60,
             remind=(), managed_group="", group_dn=""):
        t = target(f"SRV{uuid.uuid4().hex[:6].upper()}", **({"group_dn": group_dn} if group_dn else {}))
        review = {"every_minutes": every, "deadline_minutes": deadline, "reviewers": list(reviewers), "default": default,
                  "remind_before_minutes": sorted(remind, reverse=True), "managed_group": managed_group}
        return policy(t, name=f"p-{t.name.lower()}", eligible_groups=list(groups), eligible_users=list(users),
                      review=review)

    return make
