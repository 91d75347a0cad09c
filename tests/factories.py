"""Plain builders of test data. Balances are only ever set through the services (top_up, charge, ...)."""

import itertools
from decimal import Decimal

from accounts import services
from accounts.models import Account, Enterprise, Folder, User

_seq = itertools.count(1)


def next_account_id() -> str:
    return f"{1000000000000000 + next(_seq) * 7919:016d}"


def make_account(*, name=None, enterprise=None, folder=None, company_id=None, phone="13800000000",
                 email="ops@example.com", **fields) -> Account:
    n = next(_seq)
    if enterprise is not None and folder is None:
        folder = Folder.objects.get(enterprise=enterprise, parent__isnull=True)
    return Account.objects.create(
        account_id=next_account_id(), name=name or f"Account {n}", enterprise=enterprise, folder=folder,
        verified_company_id=company_id if company_id is not None else (enterprise.company_id if enterprise else ""),
        contact_phone=phone, contact_email=email, **fields)


def make_user(*, username=None, account=None, role=User.Role.MEMBER, staff=False, password="pw-Secret-123") -> User:
    user = User.objects.create_user(username=username or f"user{next(_seq)}", password=password, account=account,
                                    role=role, is_staff=staff)
    return user


def make_enterprise(*, name="Acme", company_id=None) -> tuple[Enterprise, Account, User]:
    """An enterprise with its management account and an enterprise administrator."""
    company_id = company_id or f"91310000MA{next(_seq):08d}"
    ma = make_account(name=f"{name} management", company_id=company_id)
    enterprise = services.enterprise_enable(actor=None, management_account=ma, name=name)
    ma.refresh_from_db()
    admin = make_user(username=f"admin-{enterprise.pk}", account=ma, role=User.Role.ENTERPRISE_ADMIN)
    return enterprise, ma, admin


def make_manager(username=None) -> User:
    return make_user(username=username or f"manager{next(_seq)}", staff=True)


def fund(account: Account, amount) -> Account:
    """Top up ``account`` by ``amount`` through the service, as the system."""
    services.top_up(actor=None, account=account, amount=Decimal(str(amount)))
    account.refresh_from_db()
    return account


def spend(account: Account, amount, **kwargs) -> Account:
    services.charge(actor=None, account=account, amount=Decimal(str(amount)), **kwargs)
    account.refresh_from_db()
    return account


def effective_contract(enterprise: Enterprise, admin: User, total) -> None:
    contract = services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit=Decimal(str(total)))
    services.credit_contract_confirm(actor=admin, contract=contract)
