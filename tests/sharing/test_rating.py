"""Usage deduction (SPEC section 8), with the effective times of section 7, as worked examples."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from accounts.models import AlertEvent, Bill, Charge, LedgerEntry, Operation
from sharing import services
from sharing.models import Asset, AssetHourUsage, AssetType, Deduction, ScopeType, UsagePending, UsageRecord
from sharing.rating import rate_batch, rate_pending
from tests.factories import fund, make_account

from .helpers import D, assert_books_clean, at, coupon, folder, lines, provision, usage

RI, SCU, SP, CP, BAL = "reserved_instance", "scu_package", "savings_plan", "coupon", "balance"


def figures(account):
    account.refresh_from_db()
    return (account.own_cash, account.transfer_book_balance, account.outstanding_balance)


# --- R-SH-6 / R-SH-7: only usage inside a grant interval ---

def test_coupon_shared_at_10_does_not_pay_usage_of_09_billed_at_11_R_SH_6(ent, clock):
    enterprise, ma, admin = ent
    b = fund(make_account(enterprise=enterprise), "100.00")
    cp = coupon(ma, "50.00")
    clock.set(at(10))
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    clock.set(at(11))
    early = usage(b, hour=at(9), unit_price="5.00", billed_at=at(11))
    on_time = usage(b, hour=at(10), unit_price="3.00", billed_at=at(11))
    rate_pending()
    assert lines(early) == [(BAL, None, D("5.00"))]
    assert lines(on_time) == [(CP, cp.asset_id, D("3.00"))]
    cp.refresh_from_db()
    assert cp.remaining_value == D("47.00")
    assert figures(b) == (D("95.00"), D("0.00"), D("0.00"))


def test_account_leaving_folder_at_12_keeps_11_and_gets_nothing_for_13_R_SH_7(ent, clock):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    root = ops.parent
    b = fund(make_account(enterprise=enterprise, folder=ops), "100.00")
    cp = coupon(ma, "50.00")
    clock.set(at(10))
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[ops])
    clock.set(at(11, 30))
    rated_before = usage(b, hour=at(11), unit_price="4.00", billed_at=at(11, 30))
    rate_pending()
    clock.set(at(12))
    account_services.accounts_move(actor=admin, accounts=[b], folder=root)
    clock.set(at(14))
    late_for_11 = usage(b, hour=at(11), unit_price="2.00", billed_at=at(14))  # billed after leaving
    for_13 = usage(b, hour=at(13), unit_price="6.00", billed_at=at(14))
    rate_pending()
    assert lines(rated_before) == [(CP, cp.asset_id, D("4.00"))]      # kept
    assert lines(late_for_11) == [(CP, cp.asset_id, D("2.00"))]        # 11:00 lies inside [10:00, 12:00)
    assert lines(for_13) == [(BAL, None, D("6.00"))]                   # none after leaving
    cp.refresh_from_db()
    assert cp.remaining_value == D("44.00")


def test_owner_uses_its_own_asset_without_a_grant_R_US_2(ent):
    enterprise, ma, admin = ent
    cp = coupon(ma, "10.00")
    record = usage(ma, hour=at(9), unit_price="4.00")
    rate_pending()
    assert lines(record) == [(CP, cp.asset_id, D("4.00"))]


def test_asset_outside_its_validity_window_pays_nothing_R_SH_1(ent):
    enterprise, ma, admin = ent
    fund(ma, "10.00")
    coupon(ma, "10.00", valid_from=at(10), valid_to=at(12))
    before, inside, after = (usage(ma, hour=at(h), unit_price="1.00") for h in (9, 11, 12))
    rate_pending()
    assert [lines(r)[0][0] for r in (before, inside, after)] == [BAL, CP, BAL]


# --- R-US-3: reserved instances ---

def test_reserved_instance_of_count_2_shared_by_three_accounts_covers_2_per_hour_together_R_US_3(ent, clock):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    b, c = make_account(enterprise=enterprise), make_account(enterprise=enterprise)
    ri = provision(a, AssetType.RESERVED_INSTANCE, instance_type="ecs.g7.large", region="cn-hangzhou", instance_count=2)
    clock.set(at(9))
    services.share_asset(actor=admin, asset=ri, scope_type=ScopeType.ACCOUNTS, accounts=[b, c])
    kw = {"instance_type": "ecs.g7.large", "region": "cn-hangzhou", "unit_price": "0.80"}
    r10 = [usage(x, hour=at(10), quantity=1, **kw) for x in (a, b, c)]
    r11 = [usage(x, hour=at(11), quantity=q, **kw) for x, q in ((c, "1.5"), (b, "1"))]
    other_region = usage(b, hour=at(12), quantity=1, instance_type="ecs.g7.large", region="cn-beijing", unit_price="0.80")
    other_type = usage(b, hour=at(12), quantity=1, instance_type="ecs.c7.large", region="cn-hangzhou", unit_price="0.80")
    rate_pending()
    # 10:00: a (owner) 1, b 1, then the 2 instance-hours are used up: c pays.
    assert [lines(r) for r in r10] == [[(RI, ri.asset_id, D("0.80"))],
                                       [(RI, ri.asset_id, D("0.80"))], [(BAL, None, D("0.80"))]]
    # 11:00: c 1.5 covered, b has 0.5 left covered and 0.5 x 0.80 = 0.40 to the balance.
    assert lines(r11[0]) == [(RI, ri.asset_id, D("1.20"))]
    assert lines(r11[1]) == [(RI, ri.asset_id, D("0.40")), (BAL, None, D("0.40"))]
    assert [d.covered_quantity for d in r11[1].deductions.order_by("position")] == [D("0.5"), D("0.5")]
    assert lines(other_region) == lines(other_type) == [(BAL, None, D("0.80"))]
    assert dict(AssetHourUsage.objects.filter(asset=ri).values_list("usage_hour", "used")) == {
        at(10): D("2"), at(11): D("2")}


# --- R-US-4: SCU packages ---

def test_scu_package_covers_its_gb_per_hour_for_storage_products_together_R_US_4(ent, clock):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    scu = provision(ma, AssetType.SCU_PACKAGE, capacity_gb="100", products=["oss"])
    services.share_asset(actor=admin, asset=scu, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    first = usage(ma, hour=at(10), quantity="70", unit_price="0.01", product="oss")
    second = usage(b, hour=at(10), quantity="50", unit_price="0.01", product="oss")
    not_storage = usage(b, hour=at(10), quantity="10", unit_price="0.01", product="ecs")
    next_hour = usage(b, hour=at(11), quantity="50", unit_price="0.01", product="oss")
    rate_pending()
    assert lines(first) == [(SCU, scu.asset_id, D("0.70"))]
    assert lines(second) == [(SCU, scu.asset_id, D("0.30")), (BAL, None, D("0.20"))]
    assert lines(not_storage) == [(BAL, None, D("0.10"))]
    assert lines(next_hour) == [(SCU, scu.asset_id, D("0.50"))]


# --- R-US-5: savings plans ---

def test_savings_plan_commitment_is_used_up_in_record_order_R_US_5(ent):
    """Commitment 10.00/hour, discount 20%: 10.00 of usage costs 8.00 (R = 2.00 left); the next 5.00 would
    cost 4.00 > 2.00, so f = 2.00 / 4.00 = 0.5: 2.50 covered, 2.50 to the balance; then nothing is left."""
    enterprise, ma, admin = ent
    fund(ma, "100.00")
    sp = provision(ma, AssetType.SAVINGS_PLAN, hourly_commitment="10.00", discount_rate="0.2", products=["ecs"])
    r1 = usage(ma, hour=at(10), quantity="10", unit_price="1.00")
    r2 = usage(ma, hour=at(10), quantity="5", unit_price="1.00")
    r3 = usage(ma, hour=at(10), quantity="1", unit_price="1.00")
    r4 = usage(ma, hour=at(11), quantity="1", unit_price="1.00")
    rate_pending()
    assert lines(r1) == [(SP, sp.asset_id, D("10.00"))]
    assert lines(r2) == [(SP, sp.asset_id, D("2.50")), (BAL, None, D("2.50"))]
    assert lines(r3) == [(BAL, None, D("1.00"))]
    assert lines(r4) == [(SP, sp.asset_id, D("1.00"))]
    used = dict(Deduction.objects.filter(asset=sp).values_list("usage_record_id", "asset_value_used"))
    assert used == {r1.pk: D("8.00"), r2.pk: D("2.00"), r4.pk: D("0.80")}
    assert dict(AssetHourUsage.objects.filter(asset=sp).values_list("usage_hour", "used")) == {
        at(10): D("10.00"), at(11): D("0.80")}
    assert figures(ma) == (D("96.50"), D("0.00"), D("0.00"))


def test_savings_plan_only_covers_its_eligible_products_R_US_5(ent):
    enterprise, ma, admin = ent
    provision(ma, AssetType.SAVINGS_PLAN, products=["ecs"])
    record = usage(ma, hour=at(10), product="rds", unit_price="3.00")
    rate_pending()
    assert lines(record) == [(BAL, None, D("3.00"))]


# --- R-US-6: coupons ---

def test_coupon_pays_up_to_its_remaining_value_for_applicable_products_R_US_6(ent):
    enterprise, ma, admin = ent
    for_rds = coupon(ma, "100.00", products=["rds"])
    for_all = coupon(ma, "3.00")
    r1 = usage(ma, hour=at(10), product="ecs", unit_price="5.00")
    r2 = usage(ma, hour=at(10), product="rds", unit_price="7.00")
    rate_pending()
    assert lines(r1) == [(CP, for_all.asset_id, D("3.00")), (BAL, None, D("2.00"))]
    assert lines(r2) == [(CP, for_rds.asset_id, D("7.00"))]
    for_all.refresh_from_db(); for_rds.refresh_from_db()
    assert (for_all.remaining_value, for_rds.remaining_value) == (D("0.00"), D("93.00"))


# --- R-US-2: the order ---

def test_deduction_order_ri_scu_savings_plan_coupon_then_balance_R_US_2(ent):
    """One ECS record of 3 instance-hours at 2.00: the RI (count 1) covers 1 (2.00); the savings plan
    (commitment 1.00, 50% off) covers 2.00 of the remaining 4.00 (cost 1.00); the coupon (0.50) pays 0.50;
    the balance pays 1.50."""
    enterprise, ma, admin = ent
    fund(ma, "10.00")
    ri = provision(ma, AssetType.RESERVED_INSTANCE, instance_type="ecs.g7.large", region="cn-hangzhou", instance_count=1)
    sp = provision(ma, AssetType.SAVINGS_PLAN, hourly_commitment="1.00", discount_rate="0.5", products=["ecs"])
    cp = coupon(ma, "0.50")
    record = usage(ma, hour=at(10), quantity=3, unit_price="2.00", instance_type="ecs.g7.large")
    rate_pending()
    assert lines(record) == [(RI, ri.asset_id, D("2.00")), (SP, sp.asset_id, D("2.00")), (CP, cp.asset_id, D("0.50")),
                             (BAL, None, D("1.50"))]
    assert figures(ma) == (D("8.50"), D("0.00"), D("0.00"))


def test_own_assets_before_shared_then_earliest_expiry_R_US_2(ent, clock):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    shared_soon = coupon(ma, "10.00", valid_to=at(20, day=2))
    services.share_asset(actor=admin, asset=shared_soon, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    own_late = coupon(b, "4.00", valid_to=at(20, day=30))
    own_soon = coupon(b, "1.00", valid_to=at(20, day=10))
    record = usage(b, hour=at(10), unit_price="6.00")
    rate_pending()
    assert lines(record) == [(CP, own_soon.asset_id, D("1.00")), (CP, own_late.asset_id, D("4.00")),
                             (CP, shared_soon.asset_id, D("1.00"))]


# --- R-MON-1: rounding and exact splits ---

def test_parts_sum_exactly_to_the_record_amount_with_odd_prices_R_MON_1(ent):
    enterprise, ma, admin = ent
    fund(ma, "1000.00")
    provision(ma, AssetType.SAVINGS_PLAN, hourly_commitment="0.07", discount_rate="0.3333", products=["ecs"])
    provision(ma, AssetType.RESERVED_INSTANCE, instance_type="ecs.g7.large", region="cn-hangzhou", instance_count=1)
    coupon(ma, "0.05")
    records = [usage(ma, hour=at(10 + i % 3), quantity=q, unit_price=p, instance_type="ecs.g7.large" if i % 2 else "")
               for i, (q, p) in enumerate([("0.333333", "0.123457"), ("1.7", "0.333333"), ("2.25", "0.011111"),
                                          ("3", "0.019999"), ("0.5", "0.010001"), ("7.123", "1.000007")])]
    rate_pending()
    for record in records:
        record.refresh_from_db()
        parts = list(record.deductions.values_list("amount", flat=True))
        assert sum(parts) == record.amount
        assert all(p == p.quantize(D("0.01")) for p in parts)
    assert_books_clean()


# --- R-US-7 and the ledger ---

def test_rating_twice_changes_nothing_R_US_7(ent):
    enterprise, ma, admin = ent
    fund(ma, "20.00")
    cp = coupon(ma, "3.00")
    record = usage(ma, hour=at(10), unit_price="5.00")
    assert rate_pending() == 1
    snapshot = (figures(ma), Deduction.objects.count(), Charge.objects.count(), LedgerEntry.objects.count())
    assert rate_pending() == 0
    assert rate_batch(record_ids=[record.pk]) == 0
    assert rate_pending(through_service=True) == 0
    cp.refresh_from_db()
    assert cp.remaining_value == D("0.00")
    assert (figures(ma), Deduction.objects.count(), Charge.objects.count(), LedgerEntry.objects.count()) == snapshot


def test_a_new_record_is_queued_for_rating_once_R_US_7(ent):
    """Every way of inserting records queues them (the trigger of migration sharing 0002); a rating that rolls
    back leaves its records queued; one that commits takes them off the queue for good."""
    enterprise, ma, admin = ent
    fund(ma, "20.00")
    cash = figures(ma)[0]
    made = usage(ma, hour=at(10), unit_price="1.00")  # Model.objects.create
    bulk = UsageRecord.objects.bulk_create([
        UsageRecord(record_id=f"Q-{i}", account=ma, product_code="ecs", region="cn-hangzhou", quantity=D(1),
                    unit_price=D("2.00"), amount=D("2.00"), usage_hour=at(11), billed_at=at(11), created_at=at(11))
        for i in range(3)])
    ids = [made.pk] + [r.pk for r in bulk]
    assert sorted(UsagePending.objects.values_list("pk", flat=True)) == sorted(ids)

    with pytest.raises(RuntimeError), transaction.atomic():
        assert rate_batch() == 4
        raise RuntimeError("the rating fails after taking the records")
    assert sorted(UsagePending.objects.values_list("pk", flat=True)) == sorted(ids)
    assert not Deduction.objects.exists()

    assert rate_pending() == 4
    assert not UsagePending.objects.exists()
    assert Deduction.objects.filter(usage_record_id__in=ids).values("usage_record").distinct().count() == 4
    assert rate_pending() == 0
    assert figures(ma)[0] == cash - D("7.00")
    assert_books_clean()


def test_ledger_is_clean_after_rating_and_balance_follows_spending_order_R_MON_4_R_MON_5(ent):
    enterprise, ma, admin = ent
    b = fund(make_account(enterprise=enterprise), "5.00")
    account_services.transfer_create(actor=admin, payer=fund(ma, "10.00"), payee=b, amount="2.00", remark="budget")
    record = usage(b, hour=at(10), unit_price="9.00")
    rate_pending()
    charge = Charge.objects.get()
    assert (charge.from_transfer_book, charge.from_own_cash, charge.billed) == (D("2.00"), D("5.00"), D("2.00"))
    assert Deduction.objects.get(usage_record=record).charge == charge
    assert Bill.objects.get().unpaid_amount == D("2.00")
    assert figures(b) == (D("0.00"), D("0.00"), D("2.00"))
    assert_books_clean()


def _world(enterprise, admin, tag):
    """Accounts with every kind of balance and shared assets; the same for each call."""
    a = fund(make_account(enterprise=enterprise, name=f"{tag} a"), "30.00")
    b = fund(make_account(enterprise=enterprise, name=f"{tag} b"), "3.00")
    c = make_account(enterprise=enterprise, name=f"{tag} c")
    account_services.transfer_create(actor=admin, payer=a, payee=b, amount="4.00", remark="budget")
    account_services.alert_set(actor=admin, account=b, enabled=True, threshold="5.00")
    cp = coupon(a, "6.00")
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b, c])
    sp = provision(a, AssetType.SAVINGS_PLAN, hourly_commitment="2.00", discount_rate="0.25", products=["ecs"])
    services.share_asset(actor=admin, asset=sp, scope_type=ScopeType.ACCOUNTS, accounts=[b, c])
    records = []
    for i in range(12):
        who = (a, b, c)[i % 3]
        records.append(usage(who, hour=at(9 + i // 4), quantity=str(1 + i % 4), unit_price="1.37",
                             product="ecs" if i % 2 else "rds", record_id=f"{tag}-{i:03d}"))
    return [a, b, c], records


def _outcome(accounts, records, tag):
    """Balances, alerts, charges, bills, charge ledger rows per account, and the deduction lines per record;
    descriptions without the record ids' ``tag``."""
    rows = []
    for account in accounts:
        account.refresh_from_db()
        rows.append((account.own_cash, account.transfer_book_balance, account.outstanding_balance,
                     account.alert_sent_at,  # the time of the balance change (now), not the billing time
                     list(AlertEvent.objects.filter(account=account).values_list("kind", "available_credit",
                                                                                 "created_at")),
                     [(*c[:4], c[4].replace(f"{tag}-", ""), c[5]) for c in Charge.objects.filter(
                         account=account).order_by("pk").values_list(
                         "amount", "from_transfer_book", "from_own_cash", "billed", "description", "created_at")],
                     [(*b[:3], b[3].replace(f"{tag}-", ""), b[4]) for b in Bill.objects.filter(
                         account=account).order_by("pk").values_list(
                         "amount", "unpaid_amount", "due_date", "description", "created_at")],
                     list(LedgerEntry.objects.filter(account=account, operation__kind=Operation.Kind.CHARGE)
                          .order_by("pk").values_list("bucket", "amount", "created_at"))))
    deductions = [[(d.source, d.amount, d.asset_value_used, d.covered_quantity) for d in r.deductions.all()]
                  for r in records]
    return rows, deductions


def test_batch_path_writes_what_the_charge_service_writes_R_MON_5_R_US_2(ent, clock):
    """Per batch, the balance part of an account's consecutive records with the same due date is one charge
    (R-MON-5): the batch path writes exactly what ``accounts.services.charge`` writes for it."""
    enterprise, ma, admin = ent
    fund(ma, "100.00")
    clock.set(at(8))
    service_accounts, service_records = _world(enterprise, admin, "svc")
    batch_accounts, batch_records = _world(enterprise, admin, "bat")
    rate_pending(through_service=True, record_ids=[r.pk for r in service_records], batch_size=5)
    rate_pending(record_ids=[r.pk for r in batch_records], batch_size=5)

    assert _outcome(service_accounts, service_records, "svc") == _outcome(batch_accounts, batch_records, "bat")
    assert Charge.objects.filter(account__in=batch_accounts).count() > 3
    assert AlertEvent.objects.filter(account=batch_accounts[1]).exists()
    assert_books_clean()


def test_batch_size_changes_no_balance_deduction_bill_total_or_alert_R_MON_5_R_AL_3(ent, clock):
    """Batches of 5 and one batch of all: more, smaller charges, the same money everywhere."""
    enterprise, ma, admin = ent
    fund(ma, "100.00")
    clock.set(at(8))
    small_accounts, small_records = _world(enterprise, admin, "s")
    big_accounts, big_records = _world(enterprise, admin, "b")
    rate_pending(record_ids=[r.pk for r in small_records], batch_size=5)
    rate_pending(record_ids=[r.pk for r in big_records], batch_size=1000)

    def money(accounts, records):
        rows, deductions = _outcome(accounts, records, "")
        return ([(row[0], row[1], row[2], row[3], [e[0] for e in row[4]],
                  sum((c[0] for c in row[5]), D(0)), sum((c[3] for c in row[5]), D(0)),
                  sorted({(b[2], sum((x[0] for x in row[6] if x[2] == b[2]), D(0))) for b in row[6]}))
                 for row in rows], deductions)

    assert money(small_accounts, small_records) == money(big_accounts, big_records)
    assert Charge.objects.filter(account__in=small_accounts).count() > Charge.objects.filter(
        account__in=big_accounts).count()
    assert_books_clean()


def test_one_charge_per_run_of_an_account_with_one_due_date_R_MON_5_R_MON_1(ent, clock):
    """An account's balance charges of a batch, in record order, are cut into runs with one due date each;
    a run is one charge of their sum, paid transfer book first, then own cash, the rest a bill due 15 days
    after the run's billing day; each record's balance line points to its run's charge and the lines of a
    charge sum exactly to it."""
    enterprise, ma, admin = ent
    clock.set(at(8, day=3))
    b = fund(make_account(enterprise=enterprise), "5.00")
    r1 = usage(b, hour=at(9), unit_price="3.00", billed_at=at(10))
    r2 = usage(b, hour=at(9), unit_price="4.00", billed_at=at(11))
    r3 = usage(b, hour=at(9), unit_price="2.00", billed_at=at(10, day=2))  # next day: a new run
    r4 = usage(b, hour=at(9), unit_price="1.00", billed_at=at(12))  # back to day 1: a new run again
    assert rate_pending() == 4
    charges = list(Charge.objects.filter(account=b).order_by("pk"))
    assert [(c.amount, c.from_transfer_book, c.from_own_cash, c.billed, c.created_at) for c in charges] == [
        (D("7.00"), D("0.00"), D("5.00"), D("2.00"), at(11)),
        (D("2.00"), D("0.00"), D("0.00"), D("2.00"), at(10, day=2)),
        (D("1.00"), D("0.00"), D("0.00"), D("1.00"), at(12))]
    assert charges[0].description == f"Usage of 2 records, {r1.record_id} to {r2.record_id}"
    assert charges[1].description.startswith(f"Usage {r3.record_id}: ecs cn-hangzhou ")  # one record: as before
    assert [Deduction.objects.get(usage_record=r).charge for r in (r1, r2, r3, r4)] == [
        charges[0], charges[0], charges[1], charges[2]]
    for charge in charges:
        assert sum(Deduction.objects.filter(charge=charge).values_list("amount", flat=True), D(0)) == charge.amount
    assert list(Bill.objects.filter(account=b).order_by("pk").values_list("amount", "due_date")) == [
        (D("2.00"), date(2025, 6, 16)), (D("2.00"), date(2025, 6, 17)), (D("1.00"), date(2025, 6, 16))]
    assert figures(b) == (D("0.00"), D("0.00"), D("5.00"))
    assert_books_clean()


def test_rating_takes_a_fixed_number_of_queries_per_batch_R_US_2(ent):
    enterprise, ma, admin = ent

    def queries_for(n):
        accounts = [fund(make_account(enterprise=enterprise), "1.00") for _ in range(max(1, n // 4))]
        cp = coupon(accounts[0], "2.00")
        services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=accounts[1:])
        provision(accounts[0], AssetType.SAVINGS_PLAN, hourly_commitment="0.50", discount_rate="0.1", products=["ecs"])
        for i in range(n):
            usage(accounts[i % len(accounts)], hour=at(9 + i % 5), unit_price="0.70", product="ecs" if i % 2 else "rds")
        with CaptureQueriesContext(connection) as ctx:
            assert rate_batch(batch_size=1000) == n
        assert not UsageRecord.objects.filter(pending__isnull=False).exists()
        return len(ctx.captured_queries)

    assert queries_for(8) == queries_for(80)
    assert_books_clean()


@pytest.mark.postgres
def test_concurrent_raters_rate_each_record_once_R_US_7(transactional_db, clock):
    import threading

    from django.db import connections

    from tests.factories import make_enterprise

    enterprise, ma, admin = make_enterprise()
    accounts = [fund(make_account(enterprise=enterprise), "50.00") for _ in range(10)]
    cp = coupon(ma, "30.00")
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=accounts)
    for i in range(400):
        usage(accounts[i % 10], hour=at(9 + i % 8), unit_price="0.25")
    errors = []

    def worker():
        try:
            rate_pending(batch_size=25)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Deduction.objects.values("usage_record").distinct().count() == 400
    assert not UsageRecord.objects.filter(pending__isnull=False).exists()
    cp.refresh_from_db()
    assert cp.remaining_value == D("0.00")
    total_paid = sum(Deduction.objects.values_list("amount", flat=True), Decimal(0))
    assert total_paid == D("100.00")
    assert_books_clean()
