"""Fixtures for the directory seam's own tests, against the session's real Samba DC."""
import pytest

from .helpers import unique_tag


@pytest.fixture
def dir_config(samba_dc):
    """jitad's configuration for the session DC, to vary with dataclasses.replace."""
    from jitad.directory import DirectoryConfig

    return DirectoryConfig.from_settings()


@pytest.fixture
def d(samba_dc):
    """A bound Directory (jitad's seam) for one test."""
    from jitad import directory

    conn = directory.connect()
    yield conn
    conn.close()


@pytest.fixture
def ou(jit_ou, samba_dc):
    """A fresh OU under the session OU for one test's objects."""
    from jitad import directory

    dn = f"OU=t-{unique_tag()},{jit_ou}"
    with directory.connect() as conn:
        conn.ensure_ou(dn)
    return dn


@pytest.fixture
def admin(ldap_admin):
    """One independent ldap3 admin connection (not jitad's seam) for setup and read-back."""
    conn = ldap_admin()
    yield conn
    conn.unbind()
