"""The columns of the account table export (R-UAM-4), declared as a django-import-export ``Resource``.

The export does not build a ``tablib.Dataset`` in memory: ``write_xlsx`` streams the queryset in chunks
into ``console.xlsx.StreamingXlsxWriter``, asking the resource for each row's values and each column's type.
"""

from datetime import date

from django.utils import timezone
from import_export import fields, resources, widgets
from . import xlsx

CHUNK_SIZE = 2000
COLUMN_WIDTHS = (20, 28, 18, 18, 16, 20, 16, 16, 14, 10, 18, 16)
# A text cell starting with one of these would be read as a formula by a spreadsheet (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _money(attribute, column_name):
    return fields.Field(attribute=attribute, column_name=column_name, readonly=True,
                        widget=widgets.DecimalWidget(coerce_to_string=False))


def _text(attribute, column_name):
    return fields.Field(attribute=attribute, column_name=column_name, readonly=True, widget=widgets.CharWidget())


class OnOffWidget(widgets.Widget):
    """A switch shown as On / Off."""

    def render(self, value, obj=None, **kwargs):
        return "On" if value else "Off"


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
    alert = fields.Field(attribute="alert_enabled", column_name="Low balance alert", readonly=True,
                         widget=OnOffWidget())
    alert_threshold = _money("alert_threshold", "Alert threshold")

    class Meta:
        export_order = ("account_id", "name", "folder", "available_credit", "cash_balance", "transfer_book_balance",
                        "credit_limit", "outstanding", "overdue", "coupons", "alert", "alert_threshold")


def neutralise(text: str) -> str:
    """Prefix an apostrophe to text a spreadsheet would run as a formula, also after leading spaces."""
    if text and text.lstrip(" ").startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def export_filename(today: date | None = None) -> str:
    return f"accounts-{(today or timezone.localdate()):%Y%m%d}.xlsx"


def write_xlsx(queryset, target, *, resource=None) -> int:
    """Write ``queryset`` (rows of ``account_table``) to the binary file ``target``; returns the row count.

    The resource's field attributes are read with ``.values(...).iterator(chunk_size=...)`` (no model
    instances: a third of the time) and streamed into the sheet, so memory does not grow with the number
    of accounts. Money: numeric cells, format ``#,##0.00``; text cells (account ids too) are strings with
    the text format ``@``, rendered by the field's widget and neutralised against formula injection.
    """
    resource = resource or AccountTableResource()
    fields_ = resource.get_export_fields()
    attributes = [f.attribute for f in fields_]
    kinds = [xlsx.MONEY if isinstance(f.widget, widgets.DecimalWidget)
             else xlsx.INTEGER if isinstance(f.widget, widgets.IntegerWidget) else xlsx.TEXT for f in fields_]
    text_columns = [(i, fields_[i].widget) for i, kind in enumerate(kinds) if kind == xlsx.TEXT]
    with xlsx.StreamingXlsxWriter(target, kinds=kinds, sheet_name="Accounts", widths=COLUMN_WIDTHS) as sheet:
        sheet.header(resource.get_export_headers())
        for row in queryset.values(*attributes).iterator(chunk_size=CHUNK_SIZE):
            values = [row[a] for a in attributes]
            for i, widget in text_columns:
                text = widget.render(values[i])
                values[i] = neutralise("" if text is None else str(text))
            sheet.row(values)
        return sheet.rows - 1
