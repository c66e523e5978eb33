"""Fixtures shared by the elevation tests that need the session's Samba DC."""
import uuid

import pytest


@pytest.fixture
def eph_ou(jit_ou):
    """A fresh OU for ephemeral accounts under the session's JIT OU (the operator creates one, delegated to jitad)."""
    from jitad import directory

    dn = f"OU=eph-{uuid.uuid4().hex[:6]},{jit_ou}"
    with directory.connect() as d:
        d.ensure_ou(dn)
    return dn
