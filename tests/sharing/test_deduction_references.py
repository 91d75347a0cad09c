"""On PostgreSQL a deduction line's usage record and asset are checked once per statement, by a trigger, instead
of by a foreign key per line (migration ``sharing/0004``), and its charge once per statement at the COMMIT
(``0005``); usage records, assets and charges are never deleted. These tests hold what the foreign keys held:
no line names a row that does not exist, whatever writes it, and no named row goes away. (SQLite keeps its
foreign keys, checked at the COMMIT, which a test's transaction never reaches: these tests are PostgreSQL's.)"""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from accounts.models import Charge
from sharing.models import Asset, Deduction, UsageRecord
from sharing.rating import rate_pending
from tests import factories

from .helpers import D, at, coupon, usage

pytestmark = pytest.mark.postgres

ABSENT = 10**12


@pytest.fixture
def rated(ent, clock):
    """A record of 3.00 paid 2.00 by a coupon and 1.00 by the balance: one asset line, one balance line."""
    enterprise, ma, admin = ent
    clock.set(at(8))
    owned = coupon(ma, face_value="2.00")
    record = usage(ma, hour=at(7), quantity="3")
    assert rate_pending(record_ids=[record.pk]) == 1
    return record, owned


def _line(record, **fields):
    return Deduction(**{"usage_record_id": record.pk, "position": 9, "source": Deduction.Source.BALANCE,
                        "amount": D("1.00"), **fields})


def _at_commit(make):
    """``make``, then the checks a COMMIT runs (a test's transaction never commits)."""
    def run():
        make()
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
    return run


def _refused(code, make):
    """``make`` raises Django's IntegrityError with SQLSTATE ``code`` and leaves no line behind."""
    before = Deduction.objects.count()
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        make()
    assert raised.value.__cause__.sqlstate == code
    assert Deduction.objects.count() == before
    return str(raised.value)


def test_a_line_naming_a_usage_record_that_does_not_exist_is_refused_R_US_2(rated):
    record, _ = rated
    message = _refused("23503", lambda: Deduction.objects.create(
        usage_record_id=ABSENT, position=0, source=Deduction.Source.BALANCE, amount=D("1.00")))
    assert f"usage record {ABSENT}" in message


def test_a_line_naming_an_asset_that_does_not_exist_is_refused_R_US_2(rated):
    record, _ = rated
    message = _refused("23503", lambda: _line(record, source=Deduction.Source.COUPON, asset_id=ABSENT).save())
    assert f"asset {ABSENT}" in message


def test_a_line_naming_a_charge_that_does_not_exist_is_refused_at_commit_R_MON_5(rated):
    record, _ = rated
    message = _refused("23503", _at_commit(lambda: _line(record, charge_id=ABSENT).save()))
    assert f"charge {ABSENT}" in message
    charge = record.deductions.get(source=Deduction.Source.BALANCE).charge_id
    _refused("23503", _at_commit(lambda: Deduction.objects.filter(charge_id=charge).update(charge_id=ABSENT)))


def test_a_line_may_name_a_charge_written_after_it_in_the_same_transaction_R_MON_5(rated):
    """What the rating does: its balance lines are written before their charges."""
    record, _ = rated
    charge = Charge.objects.get(pk=record.deductions.get(source=Deduction.Source.BALANCE).charge_id)
    with transaction.atomic():
        line = _line(record, charge_id=charge.pk + 1000)
        line.save()
        Charge.objects.create(**{f.attname: getattr(charge, f.attname) for f in Charge._meta.concrete_fields
                                 if not f.primary_key and f.name != "operation"},
                              pk=charge.pk + 1000, operation=_operation_like(charge.operation))
        _sql("SET CONSTRAINTS ALL IMMEDIATE")
    assert Deduction.objects.filter(pk=line.pk, charge_id=charge.pk + 1000).exists()


def _operation_like(operation):
    from accounts.models import Operation

    return Operation.objects.create(**{f.attname: getattr(operation, f.attname)
                                       for f in Operation._meta.concrete_fields if not f.primary_key})


def test_one_dangling_line_refuses_the_whole_statement_R_US_2(rated):
    """Checked per statement: 50 good lines and one bad one in one INSERT write none."""
    record, owned = rated
    good = [Deduction(usage_record_id=record.pk, position=10 + i, source=Deduction.Source.COUPON,
                      asset_id=owned.pk, amount=D("0.01")) for i in range(50)]
    bad = Deduction(usage_record_id=ABSENT, position=0, source=Deduction.Source.BALANCE, amount=D("0.01"))
    _refused("23503", lambda: Deduction.objects.bulk_create([*good[:25], bad, *good[25:]]))
    charge = record.deductions.get(source=Deduction.Source.BALANCE).charge_id
    bad_charge = Deduction(usage_record_id=record.pk, position=0, source=Deduction.Source.BALANCE,
                           amount=D("0.01"), charge_id=ABSENT)
    good_charges = [Deduction(usage_record_id=record.pk, position=100 + i, source=Deduction.Source.BALANCE,
                              amount=D("0.01"), charge_id=charge) for i in range(50)]
    _refused("23503", _at_commit(lambda: Deduction.objects.bulk_create([*good_charges[:25], bad_charge,
                                                                        *good_charges[25:]])))
    Deduction.objects.bulk_create(good)  # the same lines without it are written
    assert Deduction.objects.filter(usage_record=record).count() == 2 + 50


def test_a_line_moved_to_a_row_that_does_not_exist_is_refused_R_US_2(rated):
    record, _ = rated
    asset_line = record.deductions.get(source=Deduction.Source.COUPON)
    _refused("23503", lambda: Deduction.objects.filter(pk=asset_line.pk).update(usage_record_id=ABSENT))
    _refused("23503", lambda: Deduction.objects.filter(pk=asset_line.pk).update(asset_id=ABSENT))
    asset_line.refresh_from_db()
    assert (asset_line.usage_record_id, asset_line.asset_id) == (record.pk, rated[1].pk)


def test_usage_records_assets_and_charges_are_never_deleted_nor_renumbered_R_MON_4(rated, ent):
    """The other half of a foreign key: a row a line names stays (and one no line names yet may be named by the
    next rating, so it stays too)."""
    record, owned = rated
    unrated = usage(ent[1], hour=at(7), quantity="1")
    charge = record.deductions.get(source=Deduction.Source.BALANCE).charge_id
    for model, pk in [(UsageRecord, record.pk), (UsageRecord, unrated.pk), (Asset, owned.pk), (Charge, charge)]:
        table = model._meta.db_table
        # In SQL: Django's own delete() stops earlier, at the PROTECT of the lines (or deletes the queue row first).
        message = _refused("23001", lambda: _sql(f"DELETE FROM {table} WHERE id = %s", pk))
        assert f"{table} rows are never deleted" in message and f"id {pk}" in message
        _refused("23001", lambda: model.objects.filter(pk=pk).update(id=ABSENT))
        assert model.objects.filter(pk=pk).exists()


def _sql(statement, *params):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _foreign_keys_and_triggers():
    with connection.cursor() as cursor:
        cursor.execute("SELECT confrelid::regclass::text FROM pg_constraint "
                       "WHERE conrelid = 'sharing_deduction'::regclass AND contype = 'f' ORDER BY 1")
        keys = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname ~ '(_kept|_on_insert|"
                       "_on_update|_exist)$' AND tgname <> 'sharing_usage_pending_insert' ORDER BY 1")
        triggers = [row[0] for row in cursor.fetchall()]
    return keys, triggers


@pytest.mark.slow
def test_the_migration_reversed_puts_the_foreign_keys_back_R_US_2(transactional_db):
    checks = ["sharing_asset_id_kept", "sharing_asset_kept", "sharing_deduction_references_on_insert",
              "sharing_deduction_references_on_update", "sharing_usagerecord_id_kept", "sharing_usagerecord_kept"]
    charge_checks = ["accounts_charge_id_kept", "accounts_charge_kept", "sharing_deduction_charges_exist",
                     "sharing_deduction_charges_on_insert", "sharing_deduction_charges_on_update"]
    assert _foreign_keys_and_triggers() == ([], sorted(checks + charge_checks))
    call_command("migrate", "sharing", "0004", verbosity=0)
    try:
        assert _foreign_keys_and_triggers() == (["accounts_charge"], checks)
        call_command("migrate", "sharing", "0003", verbosity=0)
        assert _foreign_keys_and_triggers() == (["accounts_charge", "sharing_asset", "sharing_usagerecord"], [])
    finally:
        call_command("migrate", "sharing", verbosity=0)
    assert _foreign_keys_and_triggers() == ([], sorted(checks + charge_checks))


def test_the_charge_checks_leave_nothing_behind_after_a_commit_R_MON_5(transactional_db, clock):
    """The ranges noted for the COMMIT's check are gone once it ran: the rating's real COMMIT, several batches."""
    enterprise, ma, admin = factories.make_enterprise()
    clock.set(at(8))
    records = [usage(ma, hour=at(7), quantity="2") for _ in range(5)]
    assert rate_pending(record_ids=[r.pk for r in records], batch_size=2) == 5
    assert Deduction.objects.filter(charge__isnull=False).count() == 5
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sharing_deduction_charge_check")
        assert cursor.fetchone() == (0,)


def _notes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT first_id, last_id FROM sharing_deduction_charge_check ORDER BY id")
        return cursor.fetchall()


def test_a_statement_notes_one_range_or_where_its_ids_are_sparse_one_per_line_R_MON_5(rated):
    """The COMMIT's check scans the noted ranges: one per statement when its ids are dense, one per line when
    they are far apart (so that it never scans a long stretch of other lines)."""
    record, owned = rated
    charge = record.deductions.get(source=Deduction.Source.BALANCE).charge_id
    dense = Deduction.objects.bulk_create(
        [Deduction(usage_record_id=record.pk, position=10 + i, source=Deduction.Source.BALANCE, amount=D("0.01"),
                   charge_id=charge) for i in range(20)])
    assert _notes()[-1] == (dense[0].pk, dense[-1].pk)
    far = Deduction.objects.create(id=dense[-1].pk + 10**6, usage_record_id=record.pk, position=99,
                                   source=Deduction.Source.BALANCE, amount=D("0.01"), charge_id=charge)
    before = len(_notes())
    Deduction.objects.filter(pk__in=[dense[0].pk, far.pk]).update(amount=D("0.02"))
    assert _notes()[before:] == [(dense[0].pk, dense[0].pk), (far.pk, far.pk)]
    _refused("23503", _at_commit(lambda: Deduction.objects.filter(pk__in=[dense[0].pk, far.pk])
                                 .update(charge_id=ABSENT)))
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    assert _notes() == []


def test_a_real_commit_naming_a_charge_that_does_not_exist_fails_and_leaves_nothing_R_MON_5(transactional_db):
    enterprise, ma, admin = factories.make_enterprise()
    record = usage(ma, hour=at(7))
    with pytest.raises(IntegrityError, match=f"charge {ABSENT}"), transaction.atomic():
        _line(record, position=0, charge_id=ABSENT).save()
    assert not Deduction.objects.exists() and _notes() == []


def test_the_rating_refused_at_commit_for_a_missing_charge_rates_nothing_R_US_7(transactional_db, clock,
                                                                                 monkeypatch):
    """A batch whose balance lines name a charge it did not write fails at its COMMIT: every record still queued,
    no line, charge or ledger row; rated again, everything is rated once."""
    from sharing import rating
    from sharing.models import UsagePending

    from .test_rating import _world
    from .test_rating_lines_written_while_rating import _rated_again

    enterprise, ma, admin = factories.make_enterprise()
    clock.set(at(8))
    accounts, records = _world(enterprise, admin, "cmt")
    plain_insert = rating._insert

    def insert(model, columns, rows):
        plain_insert(model, columns, rows[:-1] if model is Charge else rows)

    monkeypatch.setattr(rating, "_insert", insert)
    with pytest.raises(IntegrityError, match="names charge"):
        rate_pending(record_ids=[r.pk for r in records], batch_size=100)
    assert UsagePending.objects.filter(usage_record__in=records).count() == len(records)
    assert not Deduction.objects.exists() and not Charge.objects.exists() and _notes() == []

    monkeypatch.setattr(rating, "_insert", plain_insert)
    _rated_again(records)
    assert Deduction.objects.values("usage_record").distinct().count() == len(records)
