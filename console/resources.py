"""The columns of the account table export (R-UAM-4), declared as a django-import-export ``Resource``.

The export does not build a ``tablib.Dataset`` in memory: ``write_xlsx`` streams the queryset in chunks
into openpyxl's write-only workbook, asking the resource for each row's values.
"""

from datetime import date

from django.utils import timezone
from import_export import fields, resources, widgets
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

MONEY_FORMAT = "#,##0.00"
TEXT_FORMAT = "@"
CHUNK_SIZE = 2000
# A text cell starting with one of these would be read as a formula by a spreadsheet (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _money(attribute, column_name):
    return fields.Field(attribute=attribute, column_name=column_name, readonly=True,
                        widget=widgets.DecimalWidget(coerce_to_string=False))


def _text(attribute, column_name):
    return fields.Field(attribute=attribute, column_name=column_name, readonly=True, widget=widgets.CharWidget())


class AccountTableResource(resources.Resource):
    """One row per account of the table (R-UAM-1), on rows of ``selectors.account_table``."""

    account_id = _text("account_id", "Account ID")
    name = _text("name", "Account name")
    folder = _text("folder__name", "Folder")
    available_credit = _money("available_credit_value", "Available credit")
    cash_balance = _money("cash_balance_value", "Cash balance")
    transfer_book_balance = _money("transfer_book_balance", "Transfer book balance")
    credit_limit = _money("credit_limit", "Credit limit")
    outstanding = _money("outstanding_balance", "Outstanding")
    overdue = _money("overdue_amount", "Overdue")
    coupons = fields.Field(attribute="coupons", column_name="Coupons", readonly=True,
                           widget=widgets.IntegerWidget(coerce_to_string=False))
    alert = fields.Field(column_name="Low balance alert", readonly=True, widget=widgets.CharWidget())
    alert_threshold = _money("alert_threshold", "Alert threshold")

    class Meta:
        export_order = ("account_id", "name", "folder", "available_credit", "cash_balance", "transfer_book_balance",
                        "credit_limit", "outstanding", "overdue", "coupons", "alert", "alert_threshold")

    def dehydrate_alert(self, account):
        return "On" if account.alert_enabled else "Off"


def neutralise(text: str) -> str:
    """Prefix an apostrophe to text a spreadsheet would run as a formula."""
    if text and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def export_filename(today: date | None = None) -> str:
    return f"accounts-{(today or timezone.localdate()):%Y%m%d}.xlsx"


def write_xlsx(queryset, target, *, resource=None) -> int:
    """Write ``queryset`` (rows of ``account_table``) to the file object ``target``; returns the row count.

    Rows are read with ``.iterator(chunk_size=...)`` and appended to a write-only worksheet, so memory
    does not grow with the number of accounts. Money: numeric cells, format ``#,##0.00``; text cells
    (account ids too) are strings with the text format ``@``.
    """
    resource = resource or AccountTableResource()
    export_fields = resource.get_export_fields()
    numeric = [isinstance(f.widget, (widgets.DecimalWidget, widgets.IntegerWidget)) for f in export_fields]
    money = [isinstance(f.widget, widgets.DecimalWidget) for f in export_fields]

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Accounts")
    sheet.freeze_panes = "A2"
    for index, width in enumerate((20, 28, 18, 18, 16, 20, 16, 16, 14, 10, 18, 16)):
        sheet.column_dimensions[chr(ord("A") + index)].width = width
    bold = Font(bold=True)
    header = []
    for title in resource.get_export_headers():
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)

    count = 0
    for account in queryset.iterator(chunk_size=CHUNK_SIZE):
        row = []
        for field, is_numeric, is_money in zip(export_fields, numeric, money):
            value = resource.export_field(field, account, force_native_type=True)
            if is_numeric:
                cell = WriteOnlyCell(sheet, value=value)
                if is_money:
                    cell.number_format = MONEY_FORMAT
            else:
                cell = WriteOnlyCell(sheet, value=neutralise("" if value is None else str(value)))
                cell.number_format = TEXT_FORMAT
            row.append(cell)
        sheet.append(row)
        count += 1
    workbook.save(target)
    return count
