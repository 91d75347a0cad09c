"""Test data for the account table, details, export and overview tests (console part A)."""

from decimal import Decimal

import pytest

from accounts import services
from accounts.models import Account, Folder, User
from tests import factories

HX_TABLE = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "account-table"}
HX_SUMMARY = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "account-summary"}


def bulk_accounts(enterprise, n, *, folder=None, prefix="Bulk", start=0):
    """``n`` accounts created with bulk_create; balances set directly (this is table data, not ledger data)."""
    folder = folder or Folder.objects.get(enterprise=enterprise, parent__isnull=True)
    rows = [
        Account(account_id=f"{8000000000000000 + enterprise.pk * 100000 + start + i:016d}",
                name=f"{prefix} {start + i:05d}", enterprise=enterprise, folder=folder,
                verified_company_id=enterprise.company_id,
                own_cash=Decimal(i % 997) + Decimal("0.25"), transfer_book_balance=Decimal(i % 13),
                credit_limit=Decimal(i % 7) * 100, outstanding_balance=Decimal(i % 11),
                alert_enabled=i % 3 == 0, alert_threshold=Decimal(i % 5) * 100)
        for i in range(n)
    ]
    return Account.objects.bulk_create(rows, batch_size=1000)


@pytest.fixture
def acme(ent):
    """Acme with folders Engineering > Backend and Sales, and accounts with real money in them.

    - Alpha Web (Engineering): own cash 1,000.00, alert on at 500.00 (not below)
    - Beta Payments (Backend): own cash 200.00, credit limit 300.00, then a charge of 700.00, so it owes
      200.00 (outstanding) and available credit is -200.00; alert on at 100.00 (below)
    - Gamma Sales (Sales): own cash 50.00, risk flag (credit and transfer disabled, R-CR-6)
    - Delta Partner (root folder): verified as another company (R-ORG-5)
    """
    enterprise, ma, admin = ent
    root = Folder.objects.get(enterprise=enterprise, parent__isnull=True)
    eng = services.folder_create(actor=admin, parent=root, name="Engineering")
    backend = services.folder_create(actor=admin, parent=eng, name="Backend")
    sales = services.folder_create(actor=admin, parent=root, name="Sales")
    factories.fund(ma, "100000.00")
    factories.effective_contract(enterprise, admin, "10000.00")
    alpha = factories.fund(factories.make_account(enterprise=enterprise, name="Alpha Web", folder=eng), "1000.00")
    beta = factories.fund(factories.make_account(enterprise=enterprise, name="Beta Payments", folder=backend), "200.00")
    services.credit_limit_set(actor=admin, account=beta, new_limit="300.00")
    factories.spend(beta, "700.00")
    gamma = factories.fund(factories.make_account(enterprise=enterprise, name="Gamma Sales", folder=sales), "50.00")
    services.account_flags_set(actor=factories.make_manager(), account=gamma, risk_flag=True)
    delta = factories.make_account(enterprise=enterprise, name="Delta Partner", company_id="91440000OTHER0001")
    services.alert_set(actor=admin, account=alpha, enabled=True, threshold="500.00")
    services.alert_set(actor=admin, account=beta, enabled=True, threshold="100.00")
    for a in (ma, alpha, beta, gamma, delta):
        a.refresh_from_db()
    return {"enterprise": enterprise, "ma": ma, "admin": admin, "root": root, "eng": eng, "backend": backend,
            "sales": sales, "alpha": alpha, "beta": beta, "gamma": gamma, "delta": delta}


@pytest.fixture
def other(db):
    """Another enterprise with its administrator and one account (must never see Acme's data)."""
    enterprise, ma, admin = factories.make_enterprise(name="Globex")
    account = factories.fund(factories.make_account(enterprise=enterprise, name="Globex Secret"), "10.00")
    return {"enterprise": enterprise, "ma": ma, "admin": admin, "account": account}


@pytest.fixture
def member(acme):
    """A member user of Alpha Web."""
    return factories.make_user(username="alpha-member", account=acme["alpha"], role=User.Role.MEMBER)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """PBKDF2 costs 0.6 s a user here; these tests are about screens, not password storage."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
