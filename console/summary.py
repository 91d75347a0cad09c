"""Reads for the console's summary figures: the enterprise as a whole, or one member account (R-MON-3).

Built on ``accounts.selectors``; a fixed number of queries whatever the number of accounts.
"""

from django.db.models import Count, Q, Sum

from accounts import selectors
from accounts.models import Account, Enterprise
from core.money import ZERO


def enterprise_figures(enterprise: Enterprise, *, table_filter: Q | None = None) -> dict:
    """Totals over every account of ``enterprise``: two queries (accounts, overdue bills).

    With ``table_filter`` (``selectors.account_table_filter``), ``table_rows`` is also the number of accounts
    the table shows over all its pages, counted in the same pass over the accounts instead of a COUNT of its own.
    """
    counts = {"n_table_rows": Count("pk", filter=table_filter or None)} if table_filter is not None else {}
    sums = Account.objects.filter(enterprise=enterprise).aggregate(
        **counts,
        n_accounts=Count("pk"),
        sum_own_cash=Sum("own_cash"),
        sum_transfer_book_balance=Sum("transfer_book_balance"),
        sum_credit_limit=Sum("credit_limit"),
        sum_outstanding_balance=Sum("outstanding_balance"),
        # The same conditions as the table's alert filter, so a count and the rows it leads to agree.
        n_alerts_on=Count("pk", filter=selectors.account_table_filter(alert="on")),
        n_below_threshold=Count("pk", filter=selectors.account_table_filter(alert="below")),
    )
    totals = {"accounts": sums["n_accounts"], "alerts_on": sums["n_alerts_on"],
              "below_threshold": sums["n_below_threshold"]}
    if table_filter is not None:
        totals["table_rows"] = sums["n_table_rows"]
    for key in ("own_cash", "transfer_book_balance", "credit_limit", "outstanding_balance"):
        totals[key] = sums[f"sum_{key}"] or ZERO
    totals["cash_balance"] = totals["own_cash"] + totals["transfer_book_balance"]
    totals["available_credit"] = totals["cash_balance"] + totals["credit_limit"] - totals["outstanding_balance"]
    totals["overdue"] = (selectors.overdue_bills().filter(account__enterprise=enterprise)
                         .aggregate(s=Sum("unpaid_amount"))["s"]) or ZERO
    return totals


def account_figures(account: Account) -> dict:
    """The same figures for one account (what a member user sees): one query (overdue bills)."""
    below = account.alert_enabled and account.available_credit < account.alert_threshold
    return {
        "accounts": 1,
        "own_cash": account.own_cash,
        "transfer_book_balance": account.transfer_book_balance,
        "credit_limit": account.credit_limit,
        "outstanding_balance": account.outstanding_balance,
        "cash_balance": account.cash_balance,
        "available_credit": account.available_credit,
        "overdue": selectors.overdue_amount(account),
        "alerts_on": 1 if account.alert_enabled else 0,
        "below_threshold": 1 if below else 0,
    }
