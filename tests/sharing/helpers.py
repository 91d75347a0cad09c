"""Builders for the sharing tests. Assets are provisioned and shared only through the services."""

import itertools
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import Folder
from core.money import round_money
from sharing import services
from sharing.models import AssetType, UsageRecord

_seq = itertools.count(1)
D = Decimal


def at(hour: int, minute: int = 0, *, day: int = 1) -> datetime:
    """A moment of 1 June 2025, local time."""
    return timezone.make_aware(datetime(2025, 6, day, hour, minute))


VALID_FROM = timezone.make_aware(datetime(2025, 1, 1))
VALID_TO = timezone.make_aware(datetime(2099, 1, 1))


def provision(owner, asset_type, *, valid_from=VALID_FROM, valid_to=VALID_TO, **fields):
    defaults = {
        AssetType.SAVINGS_PLAN: {"hourly_commitment": "10.00", "discount_rate": "0.2000", "products": ["ecs"]},
        AssetType.RESERVED_INSTANCE: {"instance_type": "ecs.g7.large", "region": "cn-hangzhou", "instance_count": 2},
        AssetType.SCU_PACKAGE: {"capacity_gb": "100", "products": ["oss", "nas"]},
        AssetType.COUPON: {"face_value": "50.00"},
    }[asset_type]
    return services.asset_provision(actor=None, owner=owner, asset_type=asset_type, valid_from=valid_from,
                                    valid_to=valid_to, **{**defaults, **fields})


def coupon(owner, face_value="50.00", **fields):
    return provision(owner, AssetType.COUPON, face_value=face_value, **fields)


def usage(account, *, hour, quantity="1", unit_price="1.00", product="ecs", region="cn-hangzhou",
          instance_type="", billed_at=None, record_id=None) -> UsageRecord:
    """A usage record as the import writes it (the import itself is tested in test_usage_import)."""
    quantity, unit_price = D(str(quantity)), D(str(unit_price))
    return UsageRecord.objects.create(
        record_id=record_id or f"U{next(_seq):08d}", account=account, product_code=product, region=region,
        instance_type=instance_type, quantity=quantity, unit_price=unit_price,
        amount=round_money(quantity * unit_price), usage_hour=hour, billed_at=billed_at or hour,
        created_at=billed_at or hour)


def folder(enterprise, admin, name, parent=None):
    from accounts import services as account_services

    parent = parent or Folder.objects.get(enterprise=enterprise, parent__isnull=True)
    return account_services.folder_create(actor=admin, parent=parent, name=name)


def lines(record):
    """The deduction lines of a record as (source, asset_id or None, amount) tuples."""
    record.refresh_from_db()
    return [(d.source, d.asset.asset_id if d.asset_id else None, d.amount)
            for d in record.deductions.select_related("asset").order_by("position")]


def assert_books_clean():
    """The stored balances equal their ledger rows, and each operation moved what it records (R-MON-4).

    ``accounts.ledger.ledger_differences()`` is the command's check. On SQLite its SUM() of decimals comes
    back as a float that Django does not quantize (0.1 + 0.2 - 0.3 = 5.5E-17), so there it reports false
    differences; the same check is made here with exact Decimal sums, and ``ledger_differences()`` is
    required to be empty on PostgreSQL.
    """
    from collections import defaultdict

    from django.db import connection

    from accounts.ledger import ledger_differences
    from accounts.models import Account, Bill, LedgerEntry, Operation

    sums = defaultdict(lambda: D("0.00"))
    moved = defaultdict(lambda: D("0.00"))
    for account_id, operation_id, bucket, amount in LedgerEntry.objects.values_list(
            "account_id", "operation_id", "bucket", "amount"):
        sums[(account_id, bucket)] += amount
        moved[operation_id] += {"outstanding": -amount, "credit_limit": D("0.00")}.get(bucket, amount)
    unpaid = defaultdict(lambda: D("0.00"))
    for account_id, amount in Bill.objects.values_list("account_id", "unpaid_amount"):
        unpaid[account_id] += amount
    problems = []
    for account in Account.objects.all():
        for bucket, field in LedgerEntry.BUCKET_FIELDS.items():
            if getattr(account, field) != sums[(account.pk, bucket)]:
                problems.append((account.account_id, field, getattr(account, field), sums[(account.pk, bucket)]))
        if account.outstanding_balance != unpaid[account.pk]:
            problems.append((account.account_id, "bills", account.outstanding_balance, unpaid[account.pk]))
    for pk, kind, external in Operation.objects.values_list("pk", "kind", "external_amount"):
        if moved[pk] != external:
            problems.append((pk, kind, moved[pk], external))
    assert problems == []
    if connection.vendor == "postgresql":
        assert ledger_differences() == []
