"""Demo assets for ``seed_demo`` (the lead calls ``seed_sharing_demo`` for the demo enterprise)."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import Account, Folder, User
from accounts.selectors import accounts_in_subtree
from core.money import round_money

from . import services
from .models import Asset, AssetType, Grant, ScopeType, UsageImport, UsageRecord
from .rating import rate_pending

PRODUCTS = ["ecs", "rds", "oss", "nas", "cdn"]
REGIONS = ["cn-hangzhou", "cn-shanghai"]
INSTANCE_TYPES = ["ecs.g7.large", "ecs.c7.xlarge"]
PRICES = {"ecs.g7.large": Decimal("0.68"), "ecs.c7.xlarge": Decimal("1.12")}


def seed_sharing_demo(enterprise, *, rng, now=None, usage_accounts: int = 40, usage_hours: int = 24) -> dict:
    """Provision realistic assets for ``enterprise``: some of each type, some shared with accounts and with
    folders, an automatic sharing rule for coupons, and a day of usage rated against them.

    Shares are made through the services, then dated back a week ("shared last week") so that the demo's
    past usage falls inside the grants (R-SH-6). Returns counts.
    """
    now = now or timezone.now()
    accounts = list(Account.objects.filter(enterprise=enterprise).order_by("pk"))
    ma = next(a for a in accounts if a.is_management)
    members = [a for a in accounts if not a.is_management and a.verified_company_id == enterprise.company_id]
    admin = User.objects.filter(account=ma, role=User.Role.ENTERPRISE_ADMIN).first()
    # Folder scopes only where they stay within the 100-account limit with room to spare (R-SH-4): with a large
    # demo (--accounts 10000) every folder is too big, and the demo shares with accounts only.
    folders = [f for f in Folder.objects.filter(enterprise=enterprise, parent__isnull=False).order_by("path")
               if 0 < accounts_in_subtree(f).count() <= 40]
    valid_from, valid_to = now - timedelta(days=30), now + timedelta(days=335)
    owners = [ma] + members[:5]

    def owner():
        return rng.choice(owners)

    if admin is not None and folders:
        services.auto_rule_set(actor=admin, enterprise=enterprise, asset_type=AssetType.COUPON,
                               scope_type=ScopeType.FOLDERS, folders=folders[:1])
    assets = []
    for i in range(3):
        assets.append(services.asset_provision(
            actor=None, owner=owner(), asset_type=AssetType.SAVINGS_PLAN, name=f"Compute savings plan {i + 1}",
            valid_from=valid_from, valid_to=valid_to, hourly_commitment=rng.choice(["2.00", "5.00", "12.50"]),
            discount_rate=rng.choice(["0.1500", "0.2500", "0.3200"]), products=["ecs", "rds"]))
    for i in range(3):
        assets.append(services.asset_provision(
            actor=None, owner=owner(), asset_type=AssetType.RESERVED_INSTANCE, name=f"Reserved instances {i + 1}",
            valid_from=valid_from, valid_to=valid_to, instance_type=INSTANCE_TYPES[i % 2], region=REGIONS[i % 2],
            instance_count=rng.choice([2, 4, 8])))
    for i in range(2):
        assets.append(services.asset_provision(
            actor=None, owner=owner(), asset_type=AssetType.SCU_PACKAGE, name=f"Storage capacity unit {i + 1}",
            valid_from=valid_from, valid_to=valid_to, capacity_gb=rng.choice(["500", "2000"]),
            products=["oss", "nas"]))
    for i in range(6):
        assets.append(services.asset_provision(
            actor=None, owner=owner(), asset_type=AssetType.COUPON, name=f"Coupon {i + 1}", valid_from=valid_from,
            valid_to=valid_to if i != 5 else now - timedelta(days=1), face_value=rng.choice(["50.00", "200.00", "500.00"]),
            products=[] if i % 2 else ["ecs"]))
    if admin is not None and members:
        for asset in assets:
            if asset.valid_to <= now or asset.scope_type != ScopeType.NONE:
                continue
            if rng.random() < 0.5 and folders:
                services.share_asset(actor=admin, asset=asset, scope_type=ScopeType.FOLDERS,
                                     folders=rng.sample(folders, k=min(len(folders), rng.randint(1, 2))))
            elif rng.random() < 0.8:
                services.share_asset(actor=admin, asset=asset, scope_type=ScopeType.ACCOUNTS,
                                     accounts=rng.sample(members, k=min(len(members), rng.randint(2, 12))))
    # "Shared last week": date the demo's grants back so the past day of usage falls inside them.
    last_week = now - timedelta(days=7)
    Grant.objects.filter(asset__in=assets, effective_to__isnull=True).update(effective_from=last_week)
    Asset.objects.filter(pk__in=[a.pk for a in assets]).exclude(scope_type=ScopeType.NONE).update(shared_at=last_week)
    # A day of usage for some accounts, imported as one batch and rated.
    batch = UsageImport.objects.create(file_name="demo-usage.csv", enterprise=enterprise, rows=0, created_at=now)
    users = [ma] + rng.sample(members, k=min(len(members), usage_accounts - 1))
    hour0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=usage_hours)
    records = []
    for h in range(usage_hours):
        hour = hour0 + timedelta(hours=h)
        for account in users:
            if rng.random() < 0.5:
                continue
            product = rng.choice(PRODUCTS)
            instance_type, region = "", rng.choice(REGIONS)
            if product == "ecs":
                instance_type = rng.choice(INSTANCE_TYPES)
                quantity, price = Decimal(rng.randint(1, 3)), PRICES[instance_type]
            elif product in ("oss", "nas"):
                quantity, price = Decimal(rng.randint(50, 400)), Decimal("0.000170")
            else:
                quantity, price = Decimal(1), Decimal(rng.choice(["0.35", "1.20", "2.75"]))
            records.append(UsageRecord(
                record_id=f"DEMO-{enterprise.pk}-{len(records) + 1:06d}", account=account, product_code=product,
                region=region, instance_type=instance_type, quantity=quantity, unit_price=price,
                amount=round_money(quantity * price), usage_hour=hour, billed_at=hour + timedelta(minutes=55),
                usage_import=batch, created_at=now))
    UsageRecord.objects.bulk_create(records)
    batch.rows = batch.new_records = len(records)
    batch.save(update_fields=["rows", "new_records"])
    rated = rate_pending(record_ids=[r.pk for r in records]) if records else 0
    return {"assets": len(assets), "shared": Asset.objects.filter(pk__in=[a.pk for a in assets])
            .exclude(scope_type=ScopeType.NONE).count(), "usage_records": len(records), "rated": rated}


__all__ = ["seed_sharing_demo"]
