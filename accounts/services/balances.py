"""Money in and out of one account (R-MON-5, R-MON-6): top-ups and charges, from the back office and billing."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from core.idempotency import idempotent
from core.money import ZERO, parse_amount

from .. import rules
from ..models import Account, Bill, Charge, Operation, TopUp
from .alerts import evaluate_alerts
from .common import (audit_money, balance_figures, lock_accounts, post_changes, require_account_manager,
                     user_or_none)

@idempotent("top_up", TopUp)
def top_up(*, actor, account, amount, description: str = "") -> TopUp:
    """Money paid into ``account``: pays unpaid bills oldest first, the rest to own cash (R-MON-6)."""
    require_account_manager(actor)
    amount = parse_amount(amount)
    at = timezone.now()
    account = lock_accounts(account)[account.pk if isinstance(account, Account) else int(account)]
    before = balance_figures(account)
    remaining = amount
    paid = ZERO
    bills = list(Bill.objects.select_for_update().filter(account=account, unpaid_amount__gt=0)
                 .order_by("created_at", "id"))
    for bill in bills:
        if remaining <= 0:
            break
        pay = min(remaining, bill.unpaid_amount)
        bill.unpaid_amount -= pay
        if bill.unpaid_amount == 0:
            bill.paid_at = at
        bill.save(update_fields=["unpaid_amount", "paid_at"])
        remaining -= pay
        paid += pay
    operation = Operation.objects.create(kind=Operation.Kind.TOP_UP, external_amount=amount, actor=user_or_none(actor),
                                         description=description[:200], created_at=at)
    post_changes(operation, [(account, "outstanding", -paid), (account, "own_cash", remaining)], at=at)
    record = TopUp.objects.create(account=account, operation=operation, amount=amount, paid_bills=paid,
                                  to_own_cash=remaining, created_at=at)
    audit_money(actor, "top_up", account, before, balance_figures(account), obj=record, at=at)
    evaluate_alerts([account], at=at)
    return record


@idempotent("charge", Charge)
def charge(*, actor, account, amount, description: str = "", at=None) -> Charge:
    """Spend ``amount``: transfer book balance first, then own cash, the rest as an unpaid bill (R-MON-5)."""
    require_account_manager(actor)
    amount = parse_amount(amount)
    at = at or timezone.now()
    account = lock_accounts(account)[account.pk if isinstance(account, Account) else int(account)]
    return _charge_locked(actor=actor, account=account, amount=amount, description=description, at=at)


def _charge_locked(*, actor, account: Account, amount: Decimal, description: str, at) -> Charge:
    before = balance_figures(account)
    from_book, from_cash, billed = rules.split_charge(amount=amount, transfer_book_balance=account.transfer_book_balance,
                                                     own_cash=account.own_cash)
    operation = Operation.objects.create(kind=Operation.Kind.CHARGE, external_amount=-amount, actor=user_or_none(actor),
                                         description=description[:200], created_at=at)
    post_changes(operation, [(account, "transfer_book", -from_book), (account, "own_cash", -from_cash),
                      (account, "outstanding", billed)], at=at)
    if billed > 0:
        Bill.objects.create(account=account, operation=operation, amount=billed, unpaid_amount=billed,
                            description=description[:200], created_at=at,
                            due_date=timezone.localdate(at) + timedelta(days=settings.EAC_BILL_DUE_DAYS))
    record = Charge.objects.create(account=account, operation=operation, amount=amount,
                                   from_transfer_book=from_book, from_own_cash=from_cash, billed=billed,
                                   description=description[:200], created_at=at)
    if actor is not None:
        audit_money(actor, "charge", account, before, balance_figures(account), obj=record, at=at)
    # The balance changes now, whatever day the charge is billed for: the alert goes out now (R-AL-3), and
    # its day, not the billing day, is the day without a reminder (R-AL-5).
    evaluate_alerts([account], at=timezone.now())
    return record
