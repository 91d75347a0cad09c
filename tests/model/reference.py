"""A small, pure-Python reference model of SPEC sections 2 to 5 (R-MON, R-CR, R-TR, R-AL).

Written from the SPEC text alone: it imports nothing of the project and nothing of Django. The
stateful test (``test_stateful_money.py``) drives the same operations against the real services and
compares every figure with this model after every step.

Each operation first decides, without changing anything, whether the SPEC refuses it. It returns the
set of reasons (SPEC rule ids) that refuse it, or an empty set after applying it. ``None`` in a set of
reasons stands for a refusal the SPEC does not name a rule for (e.g. "nothing to change").

Where the SPEC is silent, the model takes a decision and says so in a comment marked *Decision*.
"""

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("999999999999.99")  # R-MON-1
REMINDER_DAYS = 5  # R-AL-5
REMARK_MAX = 200  # R-TR-1

_TYPED_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")


def parse_typed_amount(text, *, allow_zero: bool = False) -> Decimal | None:
    """R-MON-1: a typed amount is positive, has at most 2 decimals and is at most 999,999,999,999.99.

    Returns the amount, or ``None`` when R-MON-1 refuses it. (Thresholds and credit limits may be 0.)
    The model is only fed plain forms (``1250.5``, ``0.00``, ``-5``, ``1e3``...); the many other
    spellings a person can type are the business of the fuzz test of ``core.money.parse_amount``.
    """
    text = str(text).strip()
    if not _TYPED_AMOUNT.fullmatch(text):
        return None
    value = Decimal(text).quantize(CENT)
    if value > MAX_AMOUNT or value < 0 or (value == 0 and not allow_zero):
        return None
    return value


@dataclass
class Bill:
    """An unpaid bill (R-MON-5): created on a day, due on a day; ``order`` breaks ties of creation time."""

    created: date
    order: int
    due: date
    unpaid: Decimal


@dataclass
class AccountState:
    key: str
    enterprise: str
    same_company: bool = True  # verified as the enterprise's company (R-ORG-1, R-ORG-5)
    pay_on_behalf: bool = False  # R-CR-6
    risk_flag: bool = False  # R-CR-6
    own_cash: Decimal = ZERO  # R-MON-2
    transfer_book: Decimal = ZERO
    credit_limit: Decimal = ZERO
    bills: list = field(default_factory=list)
    # R-AL-1 settings, R-AL-3 / R-AL-5 state
    alert_enabled: bool = False
    alert_threshold: Decimal = ZERO
    alerted: bool = False  # an alert went out since the account was last at or above the threshold
    reminders_in_episode: int = 0
    last_message_day: date | None = None
    # what went out / was recorded
    alerts: int = 0
    reminders: int = 0
    transfer_records: int = 0  # R-TR-6: transfers and withdrawals in and out
    credit_changes: int = 0  # R-CR-7

    @property
    def outstanding(self) -> Decimal:
        return sum((b.unpaid for b in self.bills), ZERO)

    def overdue(self, today: date) -> Decimal:
        """R-MON-2: the part of the outstanding balance whose bills are past their due date."""
        return sum((b.unpaid for b in self.bills if b.due < today), ZERO)

    @property
    def cash_balance(self) -> Decimal:  # R-MON-3
        return self.own_cash + self.transfer_book

    @property
    def available_credit(self) -> Decimal:  # R-MON-3
        return self.cash_balance + self.credit_limit - self.outstanding

    @property
    def disabled(self) -> bool:  # R-CR-6
        return self.pay_on_behalf or self.risk_flag


@dataclass
class Contract:
    status: str  # "pending" | "effective"
    total: Decimal


class MoneyModel:
    """The state of some accounts of one or more enterprises, and the operations of SPEC 2 to 5.

    Actors are ``(role, enterprise)`` pairs: role ``admin`` (the enterprise administrator, R-ORG-6) or
    ``member`` (a member user); the back office (account manager / billing) is ``None``.
    """

    def __init__(self, *, today: date, bill_due_days: int):
        self.today = today
        self.bill_due_days = bill_due_days  # the SPEC gives bills "a due date"; the period is configuration
        self.accounts: dict[str, AccountState] = {}
        self.pairs: dict[tuple[str, str], Decimal] = {}  # (A, B) -> remaining revocable A -> B (R-TR-3)
        self.contracts: dict[str, Contract] = {}
        self.enterprise_changes: dict[str, int] = {}  # R-CR-7 records of the enterprise total
        self._order = 0

    # --- set-up ---------------------------------------------------------------------------------

    def add_account(self, key: str, *, enterprise: str, same_company: bool = True, pay_on_behalf: bool = False,
                    risk_flag: bool = False) -> AccountState:
        account = AccountState(key=key, enterprise=enterprise, same_company=same_company,
                               pay_on_behalf=pay_on_behalf, risk_flag=risk_flag)
        self.accounts[key] = account
        self.enterprise_changes.setdefault(enterprise, 0)
        return account

    # --- figures (R-MON-3, R-CR-3, R-TR-2, R-TR-4) ------------------------------------------------

    def enterprise_accounts(self, enterprise: str) -> list[AccountState]:
        return [a for a in self.accounts.values() if a.enterprise == enterprise]

    def total_credit(self, enterprise: str) -> Decimal:
        """R-CR-1: the total credit limit in force; 0 while the first contract is pending (or none)."""
        contract = self.contracts.get(enterprise)
        return contract.total if contract is not None and contract.status == "effective" else ZERO

    def allocated(self, enterprise: str) -> Decimal:
        return sum((a.credit_limit for a in self.enterprise_accounts(enterprise)), ZERO)

    def enterprise_overdue(self, enterprise: str) -> Decimal:
        return sum((a.overdue(self.today) for a in self.enterprise_accounts(enterprise)), ZERO)

    def maximum_quota_allocable(self, enterprise: str) -> Decimal:
        """R-CR-3: total − all accounts' credit limits − all accounts' overdue amounts; may be negative."""
        return self.total_credit(enterprise) - self.allocated(enterprise) - self.enterprise_overdue(enterprise)

    def highest_credit_limit(self, key: str) -> Decimal:
        """R-CR-4: an increase may add at most the maximum quota allocable (nothing when it is negative)."""
        account = self.accounts[key]
        return account.credit_limit + max(ZERO, self.maximum_quota_allocable(account.enterprise))

    def lowest_credit_limit(self, key: str) -> Decimal:
        """R-CR-5: the lowest limit L >= 0 with cash balance + L − outstanding > 0 (amounts are in cents)."""
        account = self.accounts[key]
        return max(ZERO, account.outstanding - account.cash_balance + CENT)

    def transferable(self, key: str) -> Decimal:
        """R-TR-2: min(cash balance − transfer book balance, available credit), floored at 0."""
        account = self.accounts[key]
        return max(ZERO, min(account.cash_balance - account.transfer_book, account.available_credit))

    def withdrawable(self, source: str, target: str) -> Decimal:
        """R-TR-4: min(B's transfer book balance, remaining revocable A -> B, B's available credit), >= 0."""
        if (source, target) not in self.pairs:
            return ZERO
        b = self.accounts[target]
        return max(ZERO, min(b.transfer_book, self.pairs[(source, target)], b.available_credit))

    def figures(self, key: str) -> dict:
        account = self.accounts[key]
        return {
            "own_cash": account.own_cash,
            "transfer_book_balance": account.transfer_book,
            "credit_limit": account.credit_limit,
            "outstanding_balance": account.outstanding,
            "overdue_amount": account.overdue(self.today),
            "cash_balance": account.cash_balance,
            "available_credit": account.available_credit,
            "transferable_amount": self.transferable(key),
            "lowest_credit_limit": self.lowest_credit_limit(key),
            "highest_credit_limit": self.highest_credit_limit(key),
            "alert_enabled": account.alert_enabled,
            "alert_threshold": account.alert_threshold,
        }

    # --- alerts (R-AL-3) ------------------------------------------------------------------------

    def _balances_changed(self, *keys: str) -> None:
        """After an actual change of these accounts' balances: the low balance alerts due (R-AL-3)."""
        for key in keys:
            account = self.accounts[key]
            if not account.alert_enabled:
                continue
            if account.available_credit < account.alert_threshold:
                if not account.alerted:
                    account.alerted = True
                    account.alerts += 1
                    account.reminders_in_episode = 0
                    account.last_message_day = self.today
            else:
                account.alerted = False
                account.reminders_in_episode = 0

    # --- permissions and fund accounts (R-ORG-5, R-ORG-6, R-TR-1, R-CR-6) --------------------------

    @staticmethod
    def _admin_reasons(actor) -> set:
        return set() if actor is not None and actor[0] == "admin" else {"R-ORG-6"}

    def _fund_account_reasons(self, actor, key: str, *, outside_rule: str) -> set:
        """Why ``key`` cannot take part in a fund operation of the actor's enterprise."""
        account = self.accounts[key]
        reasons = set()
        if actor is None or account.enterprise != actor[1]:
            reasons.add(outside_rule)  # an account of another enterprise (R-ORG-6: never another's data)
        if not account.same_company:
            reasons.add("R-ORG-5")
        if account.disabled:
            reasons.add("R-CR-6")
        return reasons

    @staticmethod
    def _remark_reasons(remark) -> set:
        remark = (remark or "").strip()
        return set() if 1 <= len(remark) <= REMARK_MAX else {"R-TR-1"}

    # --- operations -----------------------------------------------------------------------------

    def top_up(self, key: str, amount) -> set:
        """R-MON-6: pays unpaid bills, oldest first, then adds to own cash."""
        value = parse_typed_amount(amount)
        if value is None:
            return {"R-MON-1"}
        account = self.accounts[key]
        rest = value
        for bill in sorted(account.bills, key=lambda b: (b.created, b.order)):
            pay = min(rest, bill.unpaid)
            bill.unpaid -= pay
            rest -= pay
        account.bills = [b for b in account.bills if b.unpaid > 0]
        account.own_cash += rest
        self._balances_changed(key)
        return set()

    def charge(self, key: str, amount, *, days_ago: int = 0) -> set:
        """R-MON-5: transfer book balance first, then own cash, the rest an unpaid bill with a due date.

        ``days_ago`` > 0 is a charge billed late for an earlier day: its bill is dated that day.
        """
        value = parse_typed_amount(amount)
        if value is None:
            return {"R-MON-1"}
        account = self.accounts[key]
        from_book = min(account.transfer_book, value)
        from_cash = min(account.own_cash, value - from_book)
        billed = value - from_book - from_cash
        account.transfer_book -= from_book
        account.own_cash -= from_cash
        if billed > 0:
            created = self.today - timedelta(days=days_ago)
            self._order += 1
            account.bills.append(Bill(created=created, order=self._order,
                                      due=created + timedelta(days=self.bill_due_days), unpaid=billed))
        self._balances_changed(key)
        return set()

    def _fund_move_reasons(self, actor, first: str, second: str, amount, remark) -> tuple[set, Decimal | None]:
        """What refuses a transfer or a withdrawal between ``first`` and ``second`` whatever its direction
        (R-MON-1, R-TR-1), and the amount typed, parsed (``None`` when it is not an amount)."""
        reasons = set()
        value = parse_typed_amount(amount)
        if value is None:
            reasons.add("R-MON-1")
        reasons |= self._remark_reasons(remark)
        reasons |= self._admin_reasons(actor)
        if first == second:
            reasons.add("R-TR-1")
        for key in (first, second):
            reasons |= self._fund_account_reasons(actor, key, outside_rule="R-TR-1")
        return reasons, value

    def transfer(self, actor, payer: str, payee: str, amount, remark) -> set:
        """R-TR-1 to R-TR-3: A's own cash to B's transfer book balance."""
        reasons, value = self._fund_move_reasons(actor, payer, payee, amount, remark)
        if self.accounts[payer].overdue(self.today) > 0:
            reasons.add("R-TR-2")
        if value is not None and value > self.transferable(payer):
            reasons.add("R-TR-2")
        if reasons:
            return reasons
        self.accounts[payer].own_cash -= value
        self.accounts[payee].transfer_book += value
        self.pairs[(payer, payee)] = self.pairs.get((payer, payee), ZERO) + value
        self.accounts[payer].transfer_records += 1
        self.accounts[payee].transfer_records += 1
        self._balances_changed(payer, payee)
        return set()

    def withdraw(self, actor, source: str, target: str, amount, remark) -> set:
        """R-TR-4, R-TR-5: money A transferred to B goes back from B's transfer book balance to A's own cash.

        *Decision* (the SPEC is silent): an overdue amount does not block a withdrawal; R-TR-2 is
        about transfers only.
        """
        reasons, value = self._fund_move_reasons(actor, source, target, amount, remark)
        if (source, target) not in self.pairs:
            reasons.add("R-TR-4")
        if value is not None and value > self.withdrawable(source, target):
            reasons.add("R-TR-4")
        if reasons:
            return reasons
        self.accounts[target].transfer_book -= value
        self.accounts[source].own_cash += value
        self.pairs[(source, target)] -= value
        self.accounts[source].transfer_records += 1
        self.accounts[target].transfer_records += 1
        self._balances_changed(source, target)
        return set()

    def grant_contract(self, enterprise: str, total) -> set:
        """R-CR-1, R-CR-2: the account manager grants or changes the total credit limit.

        The first contract is pending until confirmed; while pending, granting again changes its amount
        (the total in force stays 0, so there is no change record). Once effective, a change applies at
        once and is a change record (R-CR-7). *Decision*: granting the same total again is refused
        (there is nothing to change and no change record to write).
        """
        value = parse_typed_amount(total, allow_zero=True)
        if value is None:
            return {"R-MON-1"}
        contract = self.contracts.get(enterprise)
        if contract is None:
            self.contracts[enterprise] = Contract(status="pending", total=value)
            return set()
        if contract.total == value:
            return {None}
        contract.total = value
        if contract.status == "effective":
            self.enterprise_changes[enterprise] += 1
        return set()

    def confirm_contract(self, actor, enterprise: str) -> set:
        """R-CR-1: the management account (its enterprise administrator) confirms the pending contract."""
        contract = self.contracts[enterprise]
        reasons = set()
        if actor is None or actor != ("admin", enterprise):
            reasons.add("R-ORG-6")
        if contract.status != "pending":
            reasons.add(None)  # already confirmed: nothing to confirm
        if reasons:
            return reasons
        contract.status = "effective"
        self.enterprise_changes[enterprise] += 1  # the total in force goes from 0 to the contract's (R-CR-7)
        return set()

    def set_credit_limit(self, actor, key: str, new_limit) -> set:
        """R-CR-1, R-CR-3 to R-CR-7: set an account's credit limit.

        *Decision*: a "new" limit equal to the current one is refused (neither an increase nor a
        decrease; no change record).
        """
        reasons = set()
        value = parse_typed_amount(new_limit, allow_zero=True)
        if value is None:
            reasons.add("R-MON-1")
        reasons |= self._admin_reasons(actor)
        account = self.accounts[key]
        # R-CR-3 allocates the enterprise's total among the accounts *of the enterprise*.
        reasons |= self._fund_account_reasons(actor, key, outside_rule="R-CR-3")
        if self.contracts.get(account.enterprise) is None or self.contracts[account.enterprise].status != "effective":
            reasons.add("R-CR-1")
        if value is not None:
            current = account.credit_limit
            if value == current:
                reasons.add(None)
            elif value > current:
                if value - current > self.maximum_quota_allocable(account.enterprise):
                    reasons.add("R-CR-4")
            elif not (account.cash_balance + value - account.outstanding > 0):
                reasons.add("R-CR-5")
        if reasons:
            return reasons
        account.credit_limit = value
        account.credit_changes += 1
        self._balances_changed(key)  # the credit limit is a balance of the account (R-MON-2, R-MON-4)
        return set()

    def set_alerts(self, actor, keys: list[str], *, enabled: bool, threshold) -> set:
        """R-AL-1, R-AL-2: one threshold and one switch for every selected account, all or none.

        R-AL-3: setting it starts afresh; an account already below gets nothing until its balance
        next changes. *Decision*: saving the same settings again also starts afresh.
        """
        reasons = set()
        value = parse_typed_amount(threshold, allow_zero=True)
        if value is None:
            reasons.add("R-MON-1")
        if not keys:
            reasons.add("R-AL-2")
        reasons |= self._admin_reasons(actor)
        if actor is None or any(self.accounts[k].enterprise != actor[1] for k in keys):
            reasons.add(None)  # an account of another enterprise is never changed (R-ORG-6)
            reasons.add("R-ORG-6")
        if reasons:
            return reasons
        for key in keys:
            account = self.accounts[key]
            account.alert_enabled = enabled
            account.alert_threshold = value
            account.alerted = False
            account.reminders_in_episode = 0
            account.last_message_day = None
        return set()

    def set_flags(self, key: str, *, pay_on_behalf: bool, risk_flag: bool) -> set:
        """R-CR-6: the account manager sets the pay-on-behalf and risk flags (back office)."""
        account = self.accounts[key]
        account.pay_on_behalf = pay_on_behalf
        account.risk_flag = risk_flag
        return set()

    def advance(self, days: int) -> None:
        """Time passes: bills may become overdue (R-MON-2). Not a change of any balance."""
        self.today += timedelta(days=days)

    def send_reminders(self) -> int:
        """R-AL-5: while an account stays below its threshold, one reminder a day for at most 5 days;
        none while it is overdue or once it is back at or above the threshold.

        *Decisions*: no reminder on the day of the alert itself (the alert is that day's message);
        "at most 5 days" counts the days a reminder went out; reminders "stop as soon as the account is
        overdue": once the job finds it overdue, the episode sends no more reminders, even if the overdue
        bill is paid while the account stays below the threshold (a new episode starts after it recovers).
        """
        sent = 0
        for account in self.accounts.values():
            if not (account.alert_enabled and account.alerted):
                continue
            if account.reminders_in_episode >= REMINDER_DAYS:
                continue
            if account.last_message_day is not None and account.last_message_day >= self.today:
                continue
            if account.available_credit >= account.alert_threshold:
                continue
            if account.overdue(self.today) > 0:
                account.reminders_in_episode = REMINDER_DAYS  # stopped for this episode
                continue
            account.reminders_in_episode += 1
            account.last_message_day = self.today
            account.reminders += 1
            sent += 1
        return sent
