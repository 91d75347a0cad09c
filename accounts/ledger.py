"""Verification of the books (R-MON-4): stored balances equal their ledger sums, and the books balance."""

from collections import defaultdict
from decimal import Decimal

from django.db.models import Case, DecimalField, F, Sum, Value, When

from .models import Account, Bill, LedgerEntry, Operation

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def _m(value) -> Decimal:
    """Two places whatever the database returns (SQLite's SUM drops trailing zeros: ``0`` for ``0.00``)."""
    return Decimal(value or 0).quantize(CENT)


def ledger_differences() -> list[str]:
    """Every difference found, as a sentence; empty when the books are right."""
    problems: list[str] = []
    sums: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for row in LedgerEntry.objects.values("account_id", "bucket").annotate(total=Sum("amount")).order_by():
        sums[row["account_id"]][row["bucket"]] = _m(row["total"])
    unpaid = {r["account_id"]: _m(r["s"]) for r in
              Bill.objects.values("account_id").annotate(s=Sum("unpaid_amount")).order_by()}
    fields = LedgerEntry.BUCKET_FIELDS
    for account in Account.objects.values("pk", "account_id", *fields.values()).iterator(chunk_size=2000):
        ledger = sums.get(account["pk"], {})
        for bucket, field in fields.items():
            stored = account[field]
            expected = ledger.get(bucket, ZERO)
            if stored != expected:
                problems.append(f"account {account['account_id']}: {field} is {stored} but its ledger sums to {expected}")
        bills = unpaid.get(account["pk"], ZERO)
        if account["outstanding_balance"] != bills:
            problems.append(f"account {account['account_id']}: outstanding balance is {account['outstanding_balance']} "
                            f"but its unpaid bills sum to {bills}")
    # The books balance: per operation, the change of (own cash + transfer book - outstanding) equals the
    # money that entered or left the enterprise (0 for transfers and withdrawals).
    net = Case(
        When(bucket="outstanding", then=-F("amount")),
        When(bucket="credit_limit", then=Value(ZERO)),
        default=F("amount"),
        output_field=DecimalField(max_digits=20, decimal_places=2),
    )
    per_operation = {r["operation_id"]: _m(r["s"]) for r in
                     LedgerEntry.objects.values("operation_id").annotate(s=Sum(net)).order_by()}
    for op in Operation.objects.values("pk", "kind", "external_amount").iterator(chunk_size=5000):
        moved = per_operation.get(op["pk"], ZERO)
        if moved != op["external_amount"]:
            problems.append(f"operation {op['pk']} ({op['kind']}): balances moved {moved} but it records "
                            f"{op['external_amount']}")
    return problems
