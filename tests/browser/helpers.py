"""Reading the account table as a person sees it, and the same figures from the database."""

from decimal import Decimal

from accounts.models import Account
from accounts.selectors import overdue_amount

from .conftest import money

MONEY_LABELS = ("Available credit", "Cash balance", "Transfer book balance", "Credit limit", "Outstanding", "Overdue")

_ROW_JS = """(pk) => {
  const row = document.querySelector(`#account-table tr[data-account="${pk}"]`);
  if (!row) return null;
  return Object.fromEntries([...row.querySelectorAll('td[data-label]')]
    .map(td => [td.dataset.label, td.innerText.replace(/\\s+/g, ' ').trim()]));
}"""


def shown_row(page, account) -> dict | None:
    """The cells of ``account``'s row in the table, by column label, or None when the row is not shown."""
    return page.evaluate(_ROW_JS, account.pk)


def shown_figures(page, account) -> dict[str, Decimal]:
    row = shown_row(page, account)
    assert row is not None, f"{account.name} is not in the table"
    return {label: money(row[label]) for label in MONEY_LABELS}


def db_figures(account) -> dict[str, Decimal]:
    """The same six figures computed here from the stored balances (R-MON-3), not by the view."""
    a = Account.objects.get(pk=account.pk)
    return {
        "Available credit": a.own_cash + a.transfer_book_balance + a.credit_limit - a.outstanding_balance,
        "Cash balance": a.own_cash + a.transfer_book_balance,
        "Transfer book balance": a.transfer_book_balance,
        "Credit limit": a.credit_limit,
        "Outstanding": a.outstanding_balance,
        "Overdue": overdue_amount(a),
    }


def shown_account_pks(page) -> list[int]:
    return [int(pk) for pk in page.eval_on_selector_all(
        "#account-table tbody tr[data-account]", "rows => rows.map(r => r.dataset.account)")]


def row_locator(page, account):
    return page.locator(f'#account-table tr[data-account="{account.pk}"]')
