import pytest
from django.db import connection

from . import factories


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` need PostgreSQL; on SQLite they are skipped, saying why."""
    from django.conf import settings

    if connection.vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """Users are made in nearly every test; PBKDF2's deliberate slowness only slows the suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ent(db):
    """An enterprise (Acme), its management account and its enterprise administrator."""
    enterprise, ma, admin = factories.make_enterprise()
    return enterprise, ma, admin


@pytest.fixture
def manager(db):
    return factories.make_manager()


@pytest.fixture
def vendor():
    return connection.vendor
