import random

from sharing.demo import seed_sharing_demo
from sharing.models import Asset, AssetType, Deduction, Grant, UsageRecord
from tests.factories import fund, make_account

from .helpers import assert_books_clean, folder


def test_seed_sharing_demo_provisions_shares_and_rates_R_SH_1_R_US_2(ent):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    for i in range(12):
        fund(make_account(enterprise=enterprise, folder=ops if i % 2 else None), "500.00")
    result = seed_sharing_demo(enterprise, rng=random.Random(7), usage_accounts=8, usage_hours=6)
    assert set(Asset.objects.values_list("asset_type", flat=True)) == set(AssetType.values)
    assert result["shared"] > 0 and Grant.objects.exists()
    assert result["rated"] == result["usage_records"] == UsageRecord.objects.count() > 0
    assert Deduction.objects.exclude(source="balance").exists()
    assert_books_clean()
