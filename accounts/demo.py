"""The demo enterprise for `make run` and the browser tests.

A handful of accounts get their history through the services (transfers, charges, overdue bills, alerts), so
every screen has something real to show. With ``--accounts N`` the rest are added in bulk: their opening
top-ups are written as the same rows the top-up service writes (operation, ledger rows, top-up record), so
``check_ledger`` stays clean at 10,000 accounts in seconds.
"""

import random
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from . import services
from .models import Account, Enterprise, Folder, LedgerEntry, Operation, TopUp, User

DEMO_PASSWORD = "demo-pass-2026"
DEMO_USERS = {
    "admin": "Enterprise administrator of Acme Cloud Ltd (management account)",
    "member": "Member user of Acme's 'Web storefront' account",
    "manager": "Account manager: the back office at /backoffice/",
    "globex": "Enterprise administrator of another enterprise (Globex), for isolation",
}

FOLDER_TREE = {
    "Production": {"Retail": {"Storefront": {}, "Payments": {}}, "Data platform": {}},
    "Development": {"Sandbox": {}},
    "Shared services": {},
}

NAMED_ACCOUNTS = [
    # name, folder path, top-up
    ("Web storefront", "Production/Retail/Storefront", "52000.00"),
    ("Payments gateway", "Production/Retail/Payments", "18500.00"),
    ("Data lake", "Production/Data platform", "120000.00"),
    ("Analytics", "Production/Data platform", "7300.50"),
    ("QA sandbox", "Development/Sandbox", "1200.00"),
    ("CI runners", "Development", "3400.00"),
    ("Identity", "Shared services", "9800.00"),
    ("Logging", "Shared services", "640.00"),
]


def _account_id(rng: random.Random, used: set) -> str:
    while True:
        value = f"{rng.randrange(10**15, 10**16):016d}"
        if value not in used:
            used.add(value)
            return value


def _folders(enterprise: Enterprise, admin: User) -> dict[str, Folder]:
    root = Folder.objects.get(enterprise=enterprise, parent__isnull=True)
    made = {"": root}

    def walk(parent_path, parent, tree):
        for name, children in tree.items():
            folder = services.folder_create(actor=admin, parent=parent, name=name)
            path = f"{parent_path}/{name}".lstrip("/")
            made[path] = folder
            walk(path, folder, children)

    walk("", root, FOLDER_TREE)
    return made


def _user(username, *, account=None, role=User.Role.MEMBER, staff=False, superuser=False) -> User:
    user = User(username=username, account=account, role=role, is_staff=staff, is_superuser=superuser,
                email=f"{username}@demo.example")
    user.set_password(DEMO_PASSWORD)
    user.save()
    return user


@transaction.atomic
def seed_demo(*, accounts: int = 40, seed: int = 7) -> dict:
    rng = random.Random(seed)
    used_ids: set = set()
    manager = _user("manager", staff=True, superuser=True)

    company = "91310000MA1FL8XQ3K"
    ma = Account.objects.create(account_id=_account_id(rng, used_ids), name="Acme Cloud (management)",
                                verified_company_id=company, contact_phone="13800138000",
                                contact_email="finance@acme.example")
    enterprise = services.enterprise_enable(actor=None, management_account=ma, name="Acme Cloud Ltd")
    ma.refresh_from_db()
    admin = _user("admin", account=ma, role=User.Role.ENTERPRISE_ADMIN)
    folders = _folders(enterprise, admin)

    def new_account(name, folder, **extra):
        return Account.objects.create(
            account_id=_account_id(rng, used_ids), name=name, enterprise=enterprise, folder=folder,
            verified_company_id=extra.pop("company", company), contact_phone=f"139{rng.randrange(10**7, 10**8)}",
            contact_email=f"{name.lower().replace(' ', '.')}@acme.example", **extra)

    services.top_up(actor=manager, account=ma, amount=Decimal("250000.00"), description="Opening balance")
    named = {}
    for name, path, amount in NAMED_ACCOUNTS:
        account = new_account(name, folders[path])
        services.top_up(actor=manager, account=account, amount=Decimal(amount), description="Opening balance")
        named[name] = account
    # R-ORG-5 and R-CR-6 examples
    other = new_account("Partner reseller", folders["Shared services"], company="91440300MA5EXAMPLE")
    services.top_up(actor=manager, account=other, amount=Decimal("5000.00"))
    on_behalf = new_account("Marketing agency", folders["Shared services"], pay_on_behalf=True)
    services.top_up(actor=manager, account=on_behalf, amount=Decimal("2500.00"))

    now = timezone.now()
    # Spending, some of it long ago and unpaid: overdue bills.
    services.charge(actor=None, account=named["QA sandbox"], amount=Decimal("1850.00"),
                    description="ECS usage 2026-09", at=now - timedelta(days=45))
    services.charge(actor=None, account=named["Logging"], amount=Decimal("990.40"), description="SLS usage",
                    at=now - timedelta(days=3))
    for account in named.values():
        services.charge(actor=None, account=account, amount=Decimal(rng.randrange(1000, 90000)) / 100,
                        description="Usage this month", at=now - timedelta(hours=rng.randrange(1, 200)))
    # Transfers and withdrawals between accounts (R-TR-3, R-TR-5).
    for payer, payee, amount in [(ma, named["Web storefront"], "20000.00"), (ma, named["Analytics"], "5000.00"),
                                 (named["Data lake"], named["CI runners"], "3000.00"),
                                 (ma, named["Payments gateway"], "8000.00")]:
        services.transfer_create(actor=admin, payer=payer, payee=payee, amount=Decimal(amount),
                                 remark="Monthly budget allocation")
    services.withdrawal_create(actor=admin, source=ma, target=named["Analytics"], amount=Decimal("1500.00"),
                               remark="Unused budget returned")
    # Low balance alerts (R-AL-1): some on, one that fires on the next change.
    services.alert_set_many(actor=admin, accounts=[named["QA sandbox"], named["Logging"], named["CI runners"]],
                            enabled=True, threshold=Decimal("1000.00"))
    services.alert_set(actor=admin, account=named["Web storefront"], enabled=True, threshold=Decimal("5000.00"))
    services.charge(actor=None, account=named["Logging"], amount=Decimal("12.00"), description="SLS usage")
    # The first credit control contract, pending the management account's confirmation (R-CR-1).
    services.credit_contract_grant(actor=manager, enterprise=enterprise, total_credit_limit=Decimal("500000.00"))

    member = _user("member", account=named["Web storefront"], role=User.Role.MEMBER)

    # An invitation waiting for an answer (R-ORG-4).
    outsider = Account.objects.create(account_id=_account_id(rng, used_ids), name="Acquired startup",
                                      verified_company_id=company, contact_email="cto@startup.example")
    services.invitation_create(actor=admin, enterprise=enterprise, account_id=outsider.account_id,
                               folder=folders["Development"])

    # Bulk accounts up to the requested number.
    existing = Account.objects.filter(enterprise=enterprise).count()
    bulk = max(0, accounts - existing)
    if bulk:
        _bulk_accounts(enterprise, list(folders.values()), bulk, rng, used_ids, company, manager)

    # Equity assets: some of each type, shared with accounts and folders, an automatic rule, a day of usage rated.
    from sharing.demo import seed_sharing_demo

    seed_sharing_demo(enterprise, rng=rng, usage_accounts=min(40, accounts))

    # Another enterprise, to show that nobody sees another enterprise's data (R-ORG-6).
    g_ma = Account.objects.create(account_id=_account_id(rng, used_ids), name="Globex (management)",
                                  verified_company_id="91110000GLOBEX0001", contact_email="ap@globex.example")
    globex = services.enterprise_enable(actor=None, management_account=g_ma, name="Globex Corporation")
    g_ma.refresh_from_db()
    _user("globex", account=g_ma, role=User.Role.ENTERPRISE_ADMIN)
    services.top_up(actor=manager, account=g_ma, amount=Decimal("1000.00"))

    return {"enterprise": enterprise, "other_enterprise": globex, "admin": admin, "member": member,
            "manager": manager, "accounts": Account.objects.filter(enterprise=enterprise).count(), "rng": rng}


BULK_WORDS = ["Alpha", "Beta", "Gamma", "Delta", "Orion", "Vega", "Lyra", "Nova", "Atlas", "Zephyr", "Ember", "Quartz"]
BULK_ROLES = ["web", "batch", "db", "cache", "ml", "etl", "api", "edge", "search", "backup"]


def _bulk_accounts(enterprise, folders, count, rng, used_ids, company, manager, chunk=2000):
    """Create ``count`` accounts with an opening top-up each, as the top-up service would record it."""
    now = timezone.now()
    leaf_folders = [f for f in folders if f.parent_id is not None]
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        rows = []
        for i in range(start, start + size):
            name = f"{rng.choice(BULK_WORDS)} {rng.choice(BULK_ROLES)} {i + 1:05d}"
            rows.append(Account(account_id=_account_id(rng, used_ids), name=name, enterprise=enterprise,
                                folder=rng.choice(leaf_folders), verified_company_id=company,
                                contact_email=f"ops{i + 1}@acme.example"))
        created = Account.objects.bulk_create(rows)
        if not all(a.pk for a in created):  # backends that don't return ids
            created = list(Account.objects.filter(account_id__in=[a.account_id for a in rows]))
        amounts = [Decimal(rng.randrange(0, 5_000_000)) / 100 for _ in created]
        pairs = [(a, amt) for a, amt in zip(created, amounts) if amt > 0]
        operations = Operation.objects.bulk_create([
            Operation(kind=Operation.Kind.TOP_UP, external_amount=amt, actor=manager, description="Opening balance",
                      created_at=now) for _, amt in pairs])
        if not all(op.pk for op in operations):  # pragma: no cover - sqlite and postgres both return ids
            raise RuntimeError("bulk_create did not return primary keys")
        LedgerEntry.objects.bulk_create([
            LedgerEntry(operation=op, account=a, bucket=LedgerEntry.Bucket.OWN_CASH, amount=amt, created_at=now)
            for op, (a, amt) in zip(operations, pairs)])
        TopUp.objects.bulk_create([
            TopUp(account=a, operation=op, amount=amt, paid_bills=Decimal("0.00"), to_own_cash=amt, created_at=now)
            for op, (a, amt) in zip(operations, pairs)])
        for a, amt in pairs:
            a.own_cash = amt
        Account.objects.bulk_update([a for a, _ in pairs], ["own_cash"], batch_size=1000)
