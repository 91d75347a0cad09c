"""Usage import (R-US-1): CSV or Excel through a django-import-export ``Resource``.

All the rows of a file are checked; a bad row is reported by its row number (the header is row 1, as in a
spreadsheet) and then nothing of the file is applied. A record already imported with the same values is
skipped, so importing a file twice changes nothing (R-US-7); the same record ID with other values is an error.
"""

import io
from datetime import datetime
from decimal import Decimal, InvalidOperation

import tablib
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from import_export import fields, resources
from import_export.instance_loaders import CachedInstanceLoader

from accounts.models import Account
from core.db import atomic_service
from core.errors import DomainError
from core.money import round_money

from .models import QUANTITY, UsageImport, UsageRecord

COLUMNS = ["record_id", "account_id", "product_code", "region", "instance_type", "quantity", "unit_price",
           "usage_hour", "billed_at"]
REQUIRED_COLUMNS = [c for c in COLUMNS if c != "instance_type"]
MAX_ERRORS_SHOWN = 20
MAX_FILE_BYTES = 20 * 1024 * 1024

MSG_FILE_TYPE = "Upload a .csv or .xlsx file."
MSG_FILE_EMPTY = "The file has no usage rows."
MSG_FILE_UNREADABLE = "The file could not be read as {kind}: {error}"
MSG_FILE_TOO_BIG = "The file is larger than 20 MB; split it."
MSG_MISSING_COLUMNS = "The file lacks the column(s) {columns}; the header row must name: {expected}."
MSG_BAD_ROWS = "{count} row(s) are wrong, so nothing of this file was imported (R-US-1)."


class UsageImportError(DomainError):
    """A file with bad rows: ``errors`` lists ``(row number, message)``; nothing was imported."""

    def __init__(self, errors: list[tuple[int, str]]):
        super().__init__(MSG_BAD_ROWS.format(count=len({n for n, _ in errors})), field="file", rule="R-US-1",
                         code="bad_rows")
        self.errors = errors


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _decimal(value, *, positive: bool):
    if isinstance(value, bool):
        raise ValueError
    text = repr(value) if isinstance(value, float) else _text(value)
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError
    if not number.is_finite() or number < 0 or (positive and number == 0):
        raise ValueError
    if number != number.quantize(Decimal(1).scaleb(-QUANTITY["decimal_places"])) or number >= Decimal(10) ** 14:
        raise ValueError
    return number


def _datetime(value):
    if isinstance(value, datetime):
        moment = value
    else:
        moment = parse_datetime(_text(value).replace("/", "-"))
        if moment is None:
            raise ValueError
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class UsageRecordResource(resources.ModelResource):
    """One row per usage record. Rows are parsed and checked here, with a message per wrong cell."""

    record_id = fields.Field(attribute="record_id", column_name="record_id")

    class Meta:
        model = UsageRecord
        fields = ("record_id",)
        import_id_fields = ("record_id",)
        instance_loader_class = CachedInstanceLoader
        use_bulk = True
        batch_size = 2000
        skip_diff = True
        report_skipped = False

    def __init__(self, *, enterprise_id=None, usage_import: UsageImport | None = None):
        super().__init__()
        self.enterprise_id = enterprise_id
        self.usage_import = usage_import
        self.accounts: dict[str, Account] = {}
        self.seen: set[str] = set()

    def before_import(self, dataset, **kwargs):
        ids = {_text(v) for v in dataset["account_id"]} if "account_id" in dataset.headers else set()
        self.accounts = {a.account_id: a for a in Account.objects.filter(account_id__in=ids)}

    def import_instance(self, instance, row, **kwargs):
        errors: dict[str, str] = {}
        values = {}
        record_id = _text(row.get("record_id"))
        if not record_id or len(record_id) > 64:
            errors["record_id"] = "a record ID of 1 to 64 characters is required"
        elif record_id in self.seen:
            errors["record_id"] = f"record ID {record_id} appears twice in this file"
        self.seen.add(record_id)
        account = self.accounts.get(_text(row.get("account_id")))
        if self.enterprise_id is not None and account is not None and account.enterprise_id != self.enterprise_id:
            account = None  # another enterprise's account reads as unknown: the file must not tell it exists
        if account is None:
            whose = "of your enterprise " if self.enterprise_id is not None else ""
            errors["account_id"] = f"no account {whose}has the ID {_text(row.get('account_id'))[:32]!r}"
        values["account"] = account
        for name, limit in (("product_code", 64), ("region", 32), ("instance_type", 64)):
            text = _text(row.get(name))
            if (name != "instance_type" and not text) or len(text) > limit:
                errors[name] = f"a value of {'1' if name != 'instance_type' else '0'} to {limit} characters is required"
            values[name] = text
        for name, positive in (("quantity", True), ("unit_price", False)):
            try:
                values[name] = _decimal(row.get(name), positive=positive)
            except ValueError:
                errors[name] = (f"{_text(row.get(name))[:20]!r} is not a number "
                                f"{'above 0' if positive else 'of 0 or more'} with at most 6 decimals")
        for name in ("usage_hour", "billed_at"):
            try:
                values[name] = _datetime(row.get(name))
            except (ValueError, TypeError):
                errors[name] = f"{_text(row.get(name))[:30]!r} is not a date and time like 2025-06-01 09:00"
        hour = values.get("usage_hour")
        if hour is not None and (hour.minute or hour.second or hour.microsecond):
            errors["usage_hour"] = "the usage hour is the start of an hour, like 2025-06-01 09:00"
        if hour is not None and values.get("billed_at") is not None and values["billed_at"] < hour:
            errors["billed_at"] = "billed at must not be before the usage hour"
        if errors:
            raise ValidationError(errors)
        values["amount"] = round_money(values["quantity"] * values["unit_price"])
        if instance.pk is not None:
            same = all(getattr(instance, k) == v for k, v in values.items() if k != "account") \
                and instance.account_id == account.pk
            if not same:
                raise ValidationError({"record_id": f"record {record_id} was already imported with other values; "
                                                    "an imported record cannot change (R-US-7)"})
            instance._unchanged = True
            return
        instance.record_id = record_id
        for key, value in values.items():
            setattr(instance, key, value)
        instance.usage_import = self.usage_import
        instance.created_at = self.usage_import.created_at if self.usage_import else timezone.now()

    def skip_row(self, instance, original, row, import_validation_errors=None):
        return getattr(instance, "_unchanged", False) and not import_validation_errors


def load_dataset(*, file_name: str, content: bytes) -> tablib.Dataset:
    """Read a .csv or .xlsx file into a Dataset; a file that cannot be read is refused with why."""
    name = (file_name or "").lower()
    if len(content) > MAX_FILE_BYTES:
        raise DomainError(MSG_FILE_TOO_BIG, field="file")
    try:
        if name.endswith(".csv"):
            dataset = tablib.Dataset().load(content.decode("utf-8-sig"), format="csv")
        elif name.endswith(".xlsx"):
            dataset = tablib.Dataset().load(io.BytesIO(content), format="xlsx")
        else:
            raise DomainError(MSG_FILE_TYPE, field="file")
    except DomainError:
        raise
    except Exception as exc:  # malformed file: tell the user, never a 500
        kind = "CSV" if name.endswith(".csv") else "Excel"
        raise DomainError(MSG_FILE_UNREADABLE.format(kind=kind, error=str(exc)[:120]), field="file")
    headers = [(h or "").strip().lower() for h in (dataset.headers or [])]
    dataset.headers = headers
    missing = [c for c in REQUIRED_COLUMNS if c not in headers]
    if missing:
        raise DomainError(MSG_MISSING_COLUMNS.format(columns=", ".join(missing), expected=", ".join(COLUMNS)),
                          field="file", rule="R-US-1")
    for column in ("record_id", "account_id"):
        index = headers.index(column)
        values = [_text(v) for v in dataset.get_col(index)]
        del dataset[column]
        dataset.insert_col(index, values, header=column)
    if "instance_type" not in headers:
        dataset.append_col([""] * len(dataset), header="instance_type")
    if len(dataset) == 0:
        raise DomainError(MSG_FILE_EMPTY, field="file")
    return dataset


@atomic_service
def usage_import(*, actor, file_name: str, content: bytes, enterprise=None) -> UsageImport:
    """Import usage records from a file, all or nothing (R-US-1). ``enterprise``: the administrator's
    enterprise (rows of other accounts are errors); ``None`` for the system (``manage.py import_usage``)."""
    if actor is not None:
        from accounts.services import require_enterprise_admin

        enterprise_id = require_enterprise_admin(actor, enterprise.pk if enterprise is not None else None)
    else:
        enterprise_id = enterprise.pk if enterprise is not None else None
    dataset = load_dataset(file_name=file_name, content=content)
    batch = UsageImport.objects.create(file_name=(file_name or "")[:200], enterprise_id=enterprise_id,
                                       actor=actor if actor is not None else None, rows=len(dataset),
                                       created_at=timezone.now())
    resource = UsageRecordResource(enterprise_id=enterprise_id, usage_import=batch)
    result = resource.import_data(dataset, dry_run=False, use_transactions=False, raise_errors=False)
    errors: list[tuple[int, str]] = []
    for invalid in result.invalid_rows:
        for column, messages in invalid.error_dict.items():
            for message in messages:
                errors.append((invalid.number + 1, f"{column}: {message}"))
    for error_row in result.error_rows:
        for error in error_row.errors:
            errors.append((error_row.number + 1, str(error.error)[:200]))
    for error in result.base_errors:
        errors.append((0, str(error.error)))
    if errors:
        raise UsageImportError(sorted(errors))
    batch.new_records = UsageRecord.objects.filter(usage_import=batch).count()
    batch.save(update_fields=["new_records"])
    return batch


def import_and_rate(*, actor, file_name: str, content: bytes, enterprise=None) -> tuple[UsageImport, int]:
    """Import a file (one transaction), then rate its new records in batches (one transaction each)."""
    from .rating import rate_pending

    batch = usage_import(actor=actor, file_name=file_name, content=content, enterprise=enterprise)
    ids = list(UsageRecord.objects.filter(usage_import=batch, pending__isnull=False).values_list("pk", flat=True))
    rated = rate_pending(record_ids=ids) if ids else 0
    return batch, rated
