"""The deduction lines of a batch go to the database in chunks while the rating goes on (``_DeductionWriter``):
the same lines and money as when they are written after it, nothing of a batch left behind when a chunk or the
rating fails, and the charge ids reserved before the rating always enough."""

import sys
import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.models import Account, Bill, Charge, LedgerEntry, Operation
from sharing import rating
from sharing.models import Asset, Deduction, UsagePending
from sharing.rating import rate_pending

from .helpers import D, assert_books_clean, at
from .test_rating import _outcome, _world


def _rated_lines(records):
    """Per record, its lines as (position, source, amount, index of its charge among its account's charges)."""
    result = []
    for record in records:
        charges = list(Charge.objects.filter(account_id=record.account_id).order_by("pk").values_list("pk", flat=True))
        result.append([(d.position, d.source, d.amount, charges.index(d.charge_id) if d.charge_id else None)
                       for d in record.deductions.order_by("position")])
    return result


DEFAULT_SWITCH_INTERVAL = sys.getswitchinterval()


def _writer_threads():
    return [t for t in threading.enumerate() if t.name == "rating-deductions"]


def test_lines_written_in_chunks_while_rating_are_those_the_charge_service_gives_R_MON_1_R_MON_5(
        ent, clock, monkeypatch):
    """Chunks of 2 records: each balance line names its run's charge as soon as it is written, and the result is
    the reference path's (the charge service per run, the lines written after the rating)."""
    enterprise, ma, admin = ent
    clock.set(at(8))
    service_accounts, service_records = _world(enterprise, admin, "svc")
    chunk_accounts, chunk_records = _world(enterprise, admin, "chk")
    monkeypatch.setattr(rating, "DEDUCTION_CHUNK", 2)
    rate_pending(through_service=True, record_ids=[r.pk for r in service_records], batch_size=100)
    rate_pending(record_ids=[r.pk for r in chunk_records], batch_size=100)

    assert _outcome(service_accounts, service_records, "svc") == _outcome(chunk_accounts, chunk_records, "chk")
    assert _rated_lines(service_records) == _rated_lines(chunk_records)
    for charge in Charge.objects.filter(account__in=chunk_accounts):
        assert sum(Deduction.objects.filter(charge=charge).values_list("amount", flat=True), D(0)) == charge.amount
    assert Charge.objects.filter(account__in=chunk_accounts).count() > 1
    assert sys.getswitchinterval() == DEFAULT_SWITCH_INTERVAL and not _writer_threads()
    assert_books_clean()


def _books(accounts):
    return ([Account.objects.filter(pk=a.pk).values_list("own_cash", "transfer_book_balance", "outstanding_balance")
             .get() for a in accounts],
            sorted(Asset.objects.values_list("pk", "remaining_value")),
            Deduction.objects.count(), Charge.objects.count(), Operation.objects.count(),
            LedgerEntry.objects.count(), Bill.objects.count())


def _world_before(ent, clock, tag):
    """A world to rate at 08:00, and its books before."""
    enterprise, ma, admin = ent
    clock.set(at(8))
    accounts, records = _world(enterprise, admin, tag)
    return accounts, records, _books(accounts)


def _rated_again(records):
    """After a failed batch, rated again: every record rated, the books clean."""
    assert rate_pending(record_ids=[r.pk for r in records], batch_size=100) == len(records)
    assert_books_clean()


def _assert_nothing_left(accounts, records, before):
    """A batch failed: every figure as ``before``, every record still queued, the writer's thread ended and the
    switch interval back."""
    assert _books(accounts) == before
    assert UsagePending.objects.filter(usage_record__in=records).count() == len(records)
    assert sys.getswitchinterval() == DEFAULT_SWITCH_INTERVAL and not _writer_threads()


@pytest.mark.parametrize("bad_column, bad_value", [
    # On SQLite the foreign key is checked at the COMMIT, which a test's transaction never reaches.
    pytest.param(0, 10**12, id="usage-record-absent", marks=pytest.mark.postgres),
    pytest.param(1, -1, id="position-negative")])
def test_a_chunk_the_database_refuses_rates_nothing_of_the_batch_R_US_7(ent, clock, monkeypatch, bad_column,
                                                                         bad_value):
    """The second chunk carries a line the database refuses (a usage record that does not exist: its reference
    check, migration 0004; a negative position: a CHECK). The batch raises Django's IntegrityError and leaves
    nothing: every record still queued, no line, charge, operation, ledger row or bill, balances and coupons as
    they were; rated again, everything is rated once."""
    accounts, records, before = _world_before(ent, clock, "bad")
    monkeypatch.setattr(rating, "DEDUCTION_CHUNK", 3)
    plain_write = rating._DeductionWriter.write
    written = []

    def write(self, rows):
        if rows and len(written) == 1:
            row = list(rows[0])
            row[bad_column] = bad_value
            rows = [tuple(row), *rows[1:]]
        written.append(len(rows))
        plain_write(self, rows)

    monkeypatch.setattr(rating._DeductionWriter, "write", write)
    with pytest.raises(IntegrityError):
        rate_pending(record_ids=[r.pk for r in records], batch_size=100)
    assert len(written) >= 3  # the refused chunk was not the last one
    _assert_nothing_left(accounts, records, before)

    monkeypatch.setattr(rating._DeductionWriter, "write", plain_write)
    _rated_again(records)
    assert Deduction.objects.values("usage_record").distinct().count() == len(records)


def test_an_error_while_rating_stops_the_writer_and_rates_nothing_R_US_7(ent, clock, monkeypatch):
    """The rating fails after chunks were sent: the error is the rating's, the writer's thread has ended, the
    switch interval is back, and nothing of the batch is left."""
    accounts, records, before = _world_before(ent, clock, "err")
    monkeypatch.setattr(rating, "DEDUCTION_CHUNK", 2)
    plain_rate = rating._Batch.rate
    calls = []

    def rate(self, record):
        calls.append(record)
        if len(calls) == 9:
            raise RuntimeError("rating broke")
        return plain_rate(self, record)

    monkeypatch.setattr(rating._Batch, "rate", rate)
    with pytest.raises(RuntimeError, match="rating broke"):
        rate_pending(record_ids=[r.pk for r in records], batch_size=100)
    _assert_nothing_left(accounts, records, before)

    monkeypatch.setattr(rating._Batch, "rate", plain_rate)
    _rated_again(records)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans()), max_size=40))
def test_the_ids_reserved_before_the_rating_are_enough_for_its_runs_R_MON_5(items):
    """``_Runs.most(records)`` (the ids reserved) is at least the number of runs the records' balance parts
    make, whichever records have one: account, billing day and whether the balance pays, at random."""
    day0 = at(10)
    records = [(n, f"R{n}", account, "ecs", "", "", D(1), D(1), D(1), day0, day0 + timedelta(days=day))
               for n, (account, day, _) in enumerate(items)]
    runs = rating._Runs()
    most = runs.most(records)
    for record, (_, _, pays) in zip(records, items):
        if pays:
            runs.add(record, D("1.00"))
    assert len(runs.runs) <= most
    assert [run.index for run in runs.runs] == list(range(len(runs.runs)))


@pytest.mark.postgres
def test_a_chunk_is_written_before_the_rating_of_the_batch_ends_R_US_2(ent, clock, monkeypatch):
    """The point of the writer: the rating of the last record waits until a chunk of the same batch has been
    written by the server (and sees the 0.5 ms switch interval); lines kept back until the rating ended would
    make it wait in vain."""
    enterprise, ma, admin = ent
    clock.set(at(8))
    accounts, records = _world(enterprise, admin, "ovl")
    monkeypatch.setattr(rating, "DEDUCTION_CHUNK", 2)
    written = threading.Event()
    plain_copy_chunk, plain_rate = rating._DeductionWriter._copy_chunk, rating._Batch.rate

    def copy_chunk(writer, data):
        plain_copy_chunk(writer, data)
        written.set()

    seen = []

    def rate(self, record):
        if record[rating.R_PK] == records[-1].pk:
            seen.append((written.wait(timeout=10), sys.getswitchinterval()))
        return plain_rate(self, record)

    monkeypatch.setattr(rating._DeductionWriter, "_copy_chunk", copy_chunk)
    monkeypatch.setattr(rating._Batch, "rate", rate)
    assert rate_pending(record_ids=[r.pk for r in records], batch_size=100) == len(records)
    assert seen == [(True, 0.0005)]
    assert sys.getswitchinterval() == DEFAULT_SWITCH_INTERVAL
    assert_books_clean()

