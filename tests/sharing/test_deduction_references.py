"""On PostgreSQL a deduction line's usage record and asset are checked once per statement, by a trigger, instead
of by a foreign key per line (migration ``sharing/0004``); usage records and assets are never deleted. These
tests hold what the foreign keys held: no line names a row that does not exist, whatever writes it, and no
named row goes away. (SQLite keeps its foreign keys, checked at the COMMIT, which a test's transaction never
reaches: these tests are PostgreSQL's.)"""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from sharing.models import Asset, Deduction, UsageRecord
from sharing.rating import rate_pending

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


def test_one_dangling_line_refuses_the_whole_statement_R_US_2(rated):
    """Checked per statement: 50 good lines and one bad one in one INSERT write none."""
    record, owned = rated
    good = [Deduction(usage_record_id=record.pk, position=10 + i, source=Deduction.Source.COUPON,
                      asset_id=owned.pk, amount=D("0.01")) for i in range(50)]
    bad = Deduction(usage_record_id=ABSENT, position=0, source=Deduction.Source.BALANCE, amount=D("0.01"))
    _refused("23503", lambda: Deduction.objects.bulk_create([*good[:25], bad, *good[25:]]))
    Deduction.objects.bulk_create(good)  # the same lines without it are written
    assert Deduction.objects.filter(usage_record=record).count() == 2 + 50


def test_a_line_moved_to_a_row_that_does_not_exist_is_refused_R_US_2(rated):
    record, _ = rated
    asset_line = record.deductions.get(source=Deduction.Source.COUPON)
    _refused("23503", lambda: Deduction.objects.filter(pk=asset_line.pk).update(usage_record_id=ABSENT))
    _refused("23503", lambda: Deduction.objects.filter(pk=asset_line.pk).update(asset_id=ABSENT))
    asset_line.refresh_from_db()
    assert (asset_line.usage_record_id, asset_line.asset_id) == (record.pk, rated[1].pk)


def test_usage_records_and_assets_are_never_deleted_nor_renumbered_R_MON_4(rated, ent):
    """The other half of a foreign key: a row a line names stays (and one no line names yet may be named by the
    next rating, so it stays too)."""
    record, owned = rated
    unrated = usage(ent[1], hour=at(7), quantity="1")
    for model, pk in [(UsageRecord, record.pk), (UsageRecord, unrated.pk), (Asset, owned.pk)]:
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
        cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'sharing\\_%%' "
                       "AND tgname NOT LIKE 'sharing\\_usage\\_pending%%' ORDER BY 1")
        triggers = [row[0] for row in cursor.fetchall()]
    return keys, triggers


@pytest.mark.slow
def test_the_migration_reversed_puts_the_foreign_keys_back_R_US_2(transactional_db):
    checks = ["sharing_asset_id_kept", "sharing_asset_kept", "sharing_deduction_references_on_insert",
              "sharing_deduction_references_on_update", "sharing_usagerecord_id_kept", "sharing_usagerecord_kept"]
    assert _foreign_keys_and_triggers() == (["accounts_charge"], checks)
    call_command("migrate", "sharing", "0003", verbosity=0)
    try:
        assert _foreign_keys_and_triggers() == (["accounts_charge", "sharing_asset", "sharing_usagerecord"], [])
    finally:
        call_command("migrate", "sharing", verbosity=0)
    assert _foreign_keys_and_triggers() == (["accounts_charge"], checks)
