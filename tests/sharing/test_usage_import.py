"""Usage import from CSV and Excel (R-US-1), all rows or none, and idempotent (R-US-7)."""

import io
from datetime import datetime

import openpyxl
import pytest
from django.core.management import CommandError, call_command

from core.errors import PermissionDenied
from sharing.models import Deduction, UsageRecord
from sharing.usage_import import UsageImportError, import_and_rate, usage_import
from tests.factories import fund, make_account, make_enterprise, make_user

from .helpers import D, at, coupon

HEADER = "record_id,account_id,product_code,region,instance_type,quantity,unit_price,usage_hour,billed_at\n"


def csv_of(*rows) -> bytes:
    return (HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows)).encode()


def row(record_id, account, *, hour="2025-06-01 10:00", quantity="2", price="1.50", billed="2025-06-01 11:00"):
    return (record_id, account.account_id, "ecs", "cn-hangzhou", "", quantity, price, hour, billed)


def test_csv_import_creates_records_with_their_charge_R_US_1(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    batch = usage_import(actor=admin, enterprise=enterprise, file_name="june.csv",
                         content=csv_of(row("r-1", b), row("r-2", b, quantity="0.333333", price="0.1")))
    assert (batch.rows, batch.new_records) == (2, 2)
    r1, r2 = UsageRecord.objects.order_by("record_id")
    assert (r1.account, r1.quantity, r1.unit_price, r1.amount, r1.usage_hour, r1.billed_at) == (
        b, D("2"), D("1.5"), D("3.00"), at(10), at(11))
    assert r2.amount == D("0.03")  # 0.0333333 rounded half up to the cent, once
    assert UsageRecord.objects.filter(pending__isnull=False).count() == 2  # both queued for rating


def test_xlsx_import_with_excel_dates_and_numbers_R_US_1(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER.strip().split(","))
    sheet.append(["x-1", b.account_id, "ecs", "cn-hangzhou", "ecs.g7.large", 3, 0.25,
                  datetime(2025, 6, 1, 9), datetime(2025, 6, 1, 10, 30)])
    buffer = io.BytesIO()
    book.save(buffer)
    usage_import(actor=admin, enterprise=enterprise, file_name="june.xlsx", content=buffer.getvalue())
    record = UsageRecord.objects.get()
    assert (record.instance_type, record.quantity, record.unit_price, record.amount, record.usage_hour) == (
        "ecs.g7.large", D("3"), D("0.25"), D("0.75"), at(9))


def test_bad_row_is_reported_by_row_number_and_nothing_is_applied_R_US_1(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    content = csv_of(row("ok-1", b), row("bad-2", b, quantity="-1"), row("ok-3", b),
                     row("bad-4", b, hour="2025-06-01 10:30"), row("ok-1", b))
    with pytest.raises(UsageImportError) as exc:
        usage_import(actor=admin, enterprise=enterprise, file_name="june.csv", content=content)
    numbers = [n for n, _ in exc.value.errors]
    assert numbers == [3, 5, 6]  # the header is row 1
    messages = dict(exc.value.errors)
    assert "quantity" in messages[3] and "start of an hour" in messages[5] and "twice" in messages[6]
    assert "nothing of this file was imported" in exc.value.message
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize("content, message", [
    (b"record_id,account_id\nr,1\n", "lacks the column"),
    (HEADER.encode(), "no usage rows"),
])
def test_malformed_files_are_refused_with_why_R_US_1(ent, content, message):
    enterprise, ma, admin = ent
    with pytest.raises(Exception) as exc:
        usage_import(actor=admin, enterprise=enterprise, file_name="f.csv", content=content)
    assert message in str(exc.value)
    with pytest.raises(Exception) as exc:
        usage_import(actor=admin, enterprise=enterprise, file_name="f.xlsx", content=b"not a zip file")
    assert "could not be read" in str(exc.value)
    with pytest.raises(Exception) as exc:
        usage_import(actor=admin, enterprise=enterprise, file_name="f.pdf", content=b"%PDF")
    assert ".csv or .xlsx" in str(exc.value)


def test_rows_of_another_enterprise_are_errors_and_only_the_admin_imports_R_US_1(ent):
    enterprise, ma, admin = ent
    _, other_ma, _ = make_enterprise(name="Globex")
    with pytest.raises(UsageImportError) as exc:
        usage_import(actor=admin, enterprise=enterprise, file_name="f.csv", content=csv_of(row("r", other_ma)))
    # The same message as for an ID nobody has: the file must not reveal that another enterprise's account exists.
    assert exc.value.errors[0][1] == f"account_id: no account of your enterprise has the ID '{other_ma.account_id}'"
    with pytest.raises(UsageImportError) as unknown:
        usage_import(actor=admin, enterprise=enterprise, file_name="f.csv",
                     content=csv_of(row("r", other_ma)).replace(other_ma.account_id.encode(), b"1999999999999999"))
    assert unknown.value.errors[0][1] == "account_id: no account of your enterprise has the ID '1999999999999999'"
    with pytest.raises(PermissionDenied):
        usage_import(actor=make_user(account=make_account(enterprise=enterprise)), enterprise=enterprise,
                     file_name="f.csv", content=csv_of(row("r", ma)))
    assert not UsageRecord.objects.exists()


def test_importing_and_rating_the_same_file_twice_changes_nothing_R_US_7(ent):
    enterprise, ma, admin = ent
    b = fund(make_account(enterprise=enterprise), "10.00")
    coupon(b, "1.00")
    content = csv_of(row("r-1", b), row("r-2", b, hour="2025-06-01 11:00", billed="2025-06-01 12:00"))
    first, rated = import_and_rate(actor=admin, enterprise=enterprise, file_name="june.csv", content=content)
    assert (first.new_records, rated) == (2, 2)
    b.refresh_from_db()
    snapshot = (b.own_cash, Deduction.objects.count())
    assert snapshot == (D("5.00"), 3)  # 3.00 + 3.00 - the coupon's 1.00
    second, rated = import_and_rate(actor=admin, enterprise=enterprise, file_name="june.csv", content=content)
    assert (second.new_records, rated) == (0, 0)
    b.refresh_from_db()
    assert (b.own_cash, Deduction.objects.count()) == snapshot


def test_same_record_id_with_other_values_is_refused_R_US_7(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    usage_import(actor=admin, enterprise=enterprise, file_name="a.csv", content=csv_of(row("r-1", b)))
    with pytest.raises(UsageImportError) as exc:
        usage_import(actor=admin, enterprise=enterprise, file_name="b.csv", content=csv_of(row("r-1", b, price="9")))
    assert exc.value.errors[0][0] == 2 and "cannot change" in exc.value.errors[0][1]
    assert UsageRecord.objects.get().unit_price == D("1.5")


def test_import_usage_command_imports_and_rates_or_reports_rows_R_US_1(ent, tmp_path, capsys):
    enterprise, ma, admin = ent
    b = fund(make_account(enterprise=enterprise), "10.00")
    good = tmp_path / "good.csv"
    good.write_bytes(csv_of(row("c-1", b)))
    call_command("import_usage", str(good))
    assert "Imported 1 new usage records" in capsys.readouterr().out
    b.refresh_from_db()
    assert b.own_cash == D("7.00")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_of(row("c-2", b), row("c-3", b, price="abc")))
    with pytest.raises(CommandError):
        call_command("import_usage", str(bad))
    assert "Row 3: unit_price" in capsys.readouterr().err
    assert UsageRecord.objects.count() == 1
