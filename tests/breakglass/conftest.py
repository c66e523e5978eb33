"""Fixtures for break-glass tests: sealed AD accounts, responders and approvers."""
import uuid

import pytest

RESPONDERS, APPROVERS = "bg-responders", "bg-approvers"


@pytest.fixture
def ad_account(jit_ou):
    """An enabled AD account with a password its creator knows: ``ad_account(prefix)`` -> (sam, dn, password)."""
    from jitad import directory

    def make(prefix="bg-da-"):
        sam = f"{prefix}{uuid.uuid4().hex[:8]}"[:20]
        password = "Cr-" + uuid.uuid4().hex
        with directory.connect() as d:
            dn = d.ensure_user(sam, jit_ou, password=password)
        return sam, dn, password

    return make


@pytest.fixture
def people(make_user):
    """A responder, two approvers and an outsider, with e-mail addresses (notifications go to them)."""
    def person(prefix, *groups):
        user = make_user(prefix, groups=groups)
        user.email = f"{user.username}@jitad.test"
        user.save(update_fields=["email"])
        return user

    class People:
        responder = person("resp", RESPONDERS)
        approver1 = person("appr", APPROVERS)
        approver2 = person("appr", APPROVERS)
        outsider = person("out", "nobody")

    return People


@pytest.fixture
def sealed(ad_account):
    """Enrol an AD account through the service and wait for the worker to seal it: ``sealed(**fields)``."""
    from jitad.breakglass.models import SealedAccount
    from jitad.breakglass.services import account_enrol
    from tests.breakglass.helpers import wait_account

    def make(**fields):
        sam, dn, creator_password = ad_account()
        account = SealedAccount(name=sam, responder_groups=[RESPONDERS], approver_groups=[APPROVERS], **fields)
        account = account_enrol(account=account, actor="tester")
        account = wait_account(account.pk, SealedAccount.State.SEALED)
        account.creator_password = creator_password
        return account

    return make
