"""Model-based test: random sequences of money operations against the services, checked against a
pure-Python reference model of SPEC sections 2 to 5 (``tests/model/reference.py``) after every step.

R-MON-1 to R-MON-6, R-CR-1 to R-CR-7, R-TR-1 to R-TR-8, R-AL-1 to R-AL-5.

Each Hypothesis example builds one enterprise (management account, two plain members, one account
flagged pay-on-behalf or risk, one verified as another company) plus an account of another
enterprise, all inside a savepoint that is rolled back at the end of the example, so examples never
see each other's rows. Time is Django's clock (``django.utils.timezone.now``), patched to a fake
"now" that a rule moves forward so bills become overdue.

``HYPOTHESIS_PROFILE=long`` runs many more and longer sequences.
"""

import itertools
import os
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts import selectors, services
from accounts.ledger import ledger_differences
from accounts.models import (
    Account,
    AlertEvent,
    Bill,
    Charge,
    CreditChangeRecord,
    CreditContract,
    LedgerEntry,
    Operation,
    TopUp,
    TransferPair,
    TransferRecord,
)
from core.errors import DomainError
from core.models import AuditEvent, IdempotencyKey, Message, Notification
from tests.factories import make_account, make_enterprise, make_user

from . import driving
from .reference import CENT, MAX_AMOUNT, ZERO, MoneyModel

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
SETTINGS = settings(
    max_examples=500 if LONG else int(os.environ.get("MONEY_MODEL_EXAMPLES", "60")),
    stateful_step_count=80 if LONG else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

E, E2 = "E", "E2"  # our enterprise and another one
MEMBERS = ["MA", "A", "B", "F", "X"]  # F: pay-on-behalf or risk flag (R-CR-6); X: another company (R-ORG-5)
ALL = MEMBERS + ["O"]  # O: the management account of another enterprise
ACTORS = {"admin": ("admin", E), "member": ("member", E), "foreign": ("admin", E2)}
START = date(2025, 3, 3)

# Strategies -------------------------------------------------------------------------------------

def mostly(usual, unusual, *, in_ten: int = 8):
    """``usual`` ``in_ten`` times out of ten, else ``unusual``: sequences reach deep states and still meet refusals."""
    return st.integers(1, 10).flatmap(lambda i: usual if i <= in_ten else unusual)


INVALID_AMOUNTS = ["0", "0.00", "-5.00", "1.005", "12.345", "abc", "", "  ", "1e3", "NaN", "Infinity",
                   "1000000000000.00"]
cents = st.one_of(st.integers(1, 999), st.integers(1, 200_000), st.integers(1, 5_000_000))
valid_amounts = cents.map(lambda c: f"{(Decimal(c) / 100).quantize(CENT)}")
amounts = mostly(valid_amounts, st.sampled_from(INVALID_AMOUNTS + ["999999999999.99"] * 3), in_ten=9)
actors = mostly(st.just("admin"), st.sampled_from(["member", "foreign"]), in_ten=9)
PLAIN = ["MA", "A", "B"]  # accounts that may take part in fund operations
plain_account = st.sampled_from(PLAIN)
any_account = mostly(plain_account, st.sampled_from(["F", "X", "O"]), in_ten=7)
plain_pairs = st.permutations(PLAIN).map(lambda p: (p[0], p[1]))
account_pairs = mostly(plain_pairs, st.tuples(st.sampled_from(ALL), st.sampled_from(ALL)))
members = st.sampled_from(MEMBERS)
remarks = mostly(st.just("Q3 budget"), st.sampled_from(["", "   ", "x" * 200, "y" * 201]), in_ten=9)
# How much to ask for, relative to the figure the panel shows (boundaries: exactly, one cent over).
asks = mostly(st.sampled_from(["exact", "exact", "over", "half", "cent"]), amounts, in_ten=7)
limit_asks = mostly(st.sampled_from(["highest", "highest", "over_highest", "lowest", "lowest", "under_lowest",
                                     "zero", "current"]), amounts, in_ten=7)
threshold_asks = mostly(st.sampled_from(["available", "above_available", "below_available", "far_above", "far_above",
                                         "0.00"]), amounts)
total_asks = mostly(st.sampled_from(["below_allocated", "same", "0.00"]), amounts, in_ten=4)


# What the runs exercised (outcome of each operation), to prove the sequences reach the interesting states.
SEEN: Counter = Counter()


def money_text(value: Decimal) -> str:
    return f"{value:.2f}"


def shown(value: Decimal) -> str:
    """How a figure is written in a refusal message: 1,250.00."""
    return f"{value:,.2f}"


def resolve(ask, figure: Decimal) -> str:
    """Turn an ``ask`` into a typed amount near ``figure`` (a transferable/withdrawable amount)."""
    if ask == "exact":
        return money_text(figure)
    if ask == "over":
        return money_text(min(figure + CENT, MAX_AMOUNT + CENT))
    if ask == "half":
        return money_text((figure / 2).quantize(CENT, rounding=ROUND_DOWN))
    if ask == "cent":
        return "0.01"
    return ask


def snapshot() -> tuple:
    """Everything a refused operation must leave as it was."""
    return (
        list(Account.objects.order_by("pk").values(
            "pk", "own_cash", "transfer_book_balance", "credit_limit", "outstanding_balance", "pay_on_behalf",
            "risk_flag", "alert_enabled", "alert_threshold", "alert_sent_at", "alert_reminders_sent",
            "alert_last_reminder_on")),
        list(Bill.objects.order_by("pk").values("pk", "unpaid_amount", "paid_at")),
        list(TransferPair.objects.order_by("pk").values("pk", "remaining_revocable", "total_transferred")),
        list(CreditContract.objects.order_by("pk").values("pk", "status", "total_credit_limit")),
        {model.__name__: model.objects.count() for model in (
            LedgerEntry, Operation, TopUp, Charge, TransferRecord, CreditChangeRecord, AlertEvent, Notification,
            Message, AuditEvent, IdempotencyKey)},
    )


class MoneyMachine(RuleBasedStateMachine):
    """Random operations on one enterprise's accounts, in step with ``MoneyModel``."""

    def __init__(self):
        super().__init__()
        self.now = timezone.make_aware(datetime(START.year, START.month, START.day, 12, 0))
        self._clock = mock.patch("django.utils.timezone.now", new=lambda: self.now)
        self._clock.start()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._keys = itertools.count(1)
        self._turn = itertools.count()
        self.model: MoneyModel | None = None
        self.last_transfer = None

    def teardown(self):
        if self.model is not None:
            SEEN["alerts sent"] += sum(a.alerts for a in self.model.accounts.values())
        try:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)
        finally:
            self._clock.stop()

    # --- helpers ------------------------------------------------------------------------------

    def account(self, key: str) -> Account:
        return Account.objects.get(pk=self.pks[key])

    def expect(self, reasons: set, call, what: str):
        """Run the service ``call``: it must refuse exactly when the model refused (then change nothing)."""
        return driving.expect(reasons, call, what, seen=SEEN, snapshot=snapshot)

    # --- set-up -------------------------------------------------------------------------------

    @initialize(flag=st.sampled_from(["pay_on_behalf", "risk_flag"]),
                openings=st.lists(st.sampled_from(["0", "0", "100.00", "1000.00", "12345.67"]), min_size=5,
                                  max_size=5),
                contract=st.sampled_from(["none", "pending", "effective", "effective", "effective"]),
                total=st.sampled_from(["0.00", "500.00", "5000.00", "100000.00", "100000.00"]))
    def build_enterprise(self, flag, openings, contract, total):
        assert timezone.localdate() == START
        enterprise, ma, admin = make_enterprise(name="Acme")
        other, o, foreign = make_enterprise(name="Other")
        accounts = {
            "MA": ma,
            "A": make_account(enterprise=enterprise, name="A"),
            "B": make_account(enterprise=enterprise, name="B"),
            "F": make_account(enterprise=enterprise, name="F", **{flag: True}),
            "X": make_account(enterprise=enterprise, name="X", company_id="91440300OTHER0001"),
            "O": o,
        }
        self.enterprises = {E: enterprise, E2: other}
        self.pks = {key: a.pk for key, a in accounts.items()}
        self.keys_by_pk = {pk: key for key, pk in self.pks.items()}
        self.users = {"admin": admin, "member": make_user(account=accounts["A"]), "foreign": foreign}

        self.model = MoneyModel(today=START, bill_due_days=django_settings.EAC_BILL_DUE_DAYS)
        for key in MEMBERS:
            self.model.add_account(key, enterprise=E, same_company=(key != "X"), **({flag: True} if key == "F" else {}))
        self.model.add_account("O", enterprise=E2)

        for key, opening in zip(MEMBERS, openings):
            if opening != "0":
                self.top_up(key=key, amount=opening)
        if contract != "none":
            self.grant_contract(ask=total)
        if contract == "effective":
            self.confirm_contract(actor="admin")
            self.confirm_contract(actor="admin")  # refused: already confirmed

    # --- money in and out (R-MON-5, R-MON-6) -----------------------------------------------------

    @rule(key=any_account, amount=amounts)
    def top_up(self, key, amount):
        reasons = self.model.top_up(key, amount)
        self.expect(reasons, lambda: services.top_up(actor=None, account=self.account(key), amount=amount),
                    f"top_up({key}, {amount!r})")

    @rule(key=any_account, amount=mostly(amounts, st.sampled_from(["available", "beyond_available"]), in_ten=7),
          days_ago=mostly(st.just(0), st.sampled_from([3, 16, 40])))
    def charge(self, key, amount, days_ago):
        available = self.model.accounts[key].available_credit
        if amount == "available":  # spend exactly what is available: available credit 0.00
            amount = money_text(available) if available > 0 else "0.01"
        elif amount == "beyond_available":  # spend into the credit: available credit below 0
            amount = money_text(max(ZERO, available) + Decimal("100.00"))
        reasons = self.model.charge(key, amount, days_ago=days_ago)
        at = self.now - timedelta(days=days_ago) if days_ago else None
        self.expect(reasons, lambda: services.charge(actor=None, account=self.account(key), amount=amount, at=at),
                    f"charge({key}, {amount!r}, days_ago={days_ago})")

    # --- transfer and withdrawal (R-TR-1 to R-TR-5, R-TR-7) -------------------------------------

    @rule(actor=actors, accounts=account_pairs, ask=asks, remark=remarks)
    def transfer(self, actor, accounts, ask, remark):
        payer, payee = accounts
        amount = resolve(ask, self.model.transferable(payer))
        reasons = self.model.transfer(ACTORS[actor], payer, payee, amount, remark)
        key = f"transfer-{next(self._keys)}"
        kwargs = {"actor": self.users[actor], "payer": self.account(payer), "payee": self.account(payee),
                  "amount": amount, "remark": remark}
        result = self.expect(reasons, lambda: services.transfer_create(idempotency_key=key, **kwargs),
                             f"transfer({actor}, {payer} -> {payee}, {amount!r}, {remark[:10]!r})")
        if isinstance(result, DomainError):
            if result.code == "over_transferable":
                assert shown(self.model.transferable(payer)) in result.message, result.message
        else:
            self.last_transfer = (key, kwargs, result.pk)

    def _withdraw(self, actor, source, target, ask, remark):
        amount = resolve(ask, self.model.withdrawable(source, target))
        reasons = self.model.withdraw(ACTORS[actor], source, target, amount, remark)
        result = self.expect(
            reasons,
            lambda: services.withdrawal_create(actor=self.users[actor], source=self.account(source),
                                               target=self.account(target), amount=amount, remark=remark,
                                               idempotency_key=f"withdrawal-{next(self._keys)}"),
            f"withdraw({actor}, {source} <- {target}, {amount!r}, {remark[:10]!r})")
        if isinstance(result, DomainError) and result.code == "over_withdrawable":
            assert shown(self.model.withdrawable(source, target)) in result.message, result.message

    @rule(actor=actors, accounts=account_pairs, ask=asks, remark=remarks)
    def withdraw(self, actor, accounts, ask, remark):
        source, receiver = accounts
        self._withdraw(actor, source, receiver, ask, remark)

    @precondition(lambda self: self.model is not None and self.model.pairs)
    @rule(pick=st.integers(0, 1000), actor=actors, ask=asks, remark=remarks)
    def withdraw_from_a_past_transfer(self, pick, actor, ask, remark):
        pairs = sorted(self.model.pairs)
        source, target = pairs[pick % len(pairs)]
        self._withdraw(actor, source, target, ask, remark)

    @precondition(lambda self: self.last_transfer is not None)
    @rule(same_parameters=st.booleans())
    def repeat_last_transfer_request(self, same_parameters):
        """R-TR-7: the same key returns the first result and moves no money; with other parameters it is refused."""
        key, kwargs, first_pk = self.last_transfer
        before = snapshot()
        if same_parameters:
            result = services.transfer_create(idempotency_key=key, **kwargs)
            assert result.pk == first_pk
        else:
            other = dict(kwargs, amount=money_text(Decimal(kwargs["amount"]) + CENT))
            with pytest.raises(DomainError) as refused:
                services.transfer_create(idempotency_key=key, **other)
            assert refused.value.code == "idempotency_mismatch"
        assert snapshot() == before

    # --- credit control (R-CR-1 to R-CR-7) --------------------------------------------------------

    @rule(ask=total_asks)
    def grant_contract(self, ask):
        contract = self.model.contracts.get(E)
        if ask == "below_allocated":  # lower the total below what is allocated (R-CR-3: allocable < 0)
            ask = money_text(max(ZERO, self.model.allocated(E) - CENT))
        elif ask == "same":
            ask = money_text(contract.total) if contract else "0.00"
        reasons = self.model.grant_contract(E, ask)
        self.expect(reasons, lambda: services.credit_contract_grant(actor=None, enterprise=self.enterprises[E],
                                                                    total_credit_limit=ask),
                    f"grant_contract({ask!r})")

    @precondition(lambda self: self.model is not None and E in self.model.contracts
                  and self.model.contracts[E].status == "pending")
    @rule(actor=actors)
    def confirm_contract(self, actor):
        reasons = self.model.confirm_contract(ACTORS[actor], E)
        contract = CreditContract.objects.get(enterprise=self.enterprises[E])
        self.expect(reasons, lambda: services.credit_contract_confirm(actor=self.users[actor], contract=contract),
                    f"confirm_contract({actor})")

    @rule(actor=actors, key=any_account, ask=limit_asks)
    def set_credit_limit(self, actor, key, ask):
        account = self.model.accounts[key]
        new_limit = {
            "highest": lambda: self.model.highest_credit_limit(key),
            "over_highest": lambda: self.model.highest_credit_limit(key) + CENT,
            "lowest": lambda: self.model.lowest_credit_limit(key),
            "under_lowest": lambda: self.model.lowest_credit_limit(key) - CENT,
            "zero": lambda: ZERO,
            "current": lambda: account.credit_limit,
        }.get(ask)
        new_limit = money_text(new_limit()) if new_limit else ask
        reasons = self.model.set_credit_limit(ACTORS[actor], key, new_limit)
        result = self.expect(
            reasons,
            lambda: services.credit_limit_set(actor=self.users[actor], account=self.account(key), new_limit=new_limit,
                                              idempotency_key=f"credit-{next(self._keys)}"),
            f"set_credit_limit({actor}, {key}, {new_limit!r})")
        if isinstance(result, DomainError):
            if result.code == "over_allocable":
                assert shown(self.model.maximum_quota_allocable(account.enterprise)) in result.message
                assert shown(self.model.highest_credit_limit(key)) in result.message
            if result.code == "decrease_too_low":
                assert shown(self.model.lowest_credit_limit(key)) in result.message

    @rule(key=mostly(st.sampled_from(["F", "X"]), plain_account, in_ten=8), flags=mostly(st.just((False, False)), st.sampled_from([(True, False), (False, True), (True, True)]),
                                    in_ten=6))
    def set_flags(self, key, flags):
        """R-CR-6: the account manager flags or unflags an account in the back office."""
        pay_on_behalf, risk_flag = flags
        self.model.set_flags(key, pay_on_behalf=pay_on_behalf, risk_flag=risk_flag)
        services.account_flags_set(actor=None, account=self.account(key), pay_on_behalf=pay_on_behalf,
                                   risk_flag=risk_flag)

    # --- alerts (R-AL-1 to R-AL-5) ------------------------------------------------------------------

    @rule(actor=actors, key=any_account, enabled=mostly(st.just(True), st.just(False)), ask=threshold_asks)
    def set_alert(self, actor, key, enabled, ask):
        available = self.model.accounts[key].available_credit
        threshold = {"available": available, "above_available": available + CENT,
                     "below_available": available - CENT, "far_above": available + 500}.get(ask)
        threshold = money_text(threshold) if threshold is not None else ask
        reasons = self.model.set_alerts(ACTORS[actor], [key], enabled=enabled, threshold=threshold)
        self.expect(reasons, lambda: services.alert_set(actor=self.users[actor], account=self.account(key),
                                                        enabled=enabled, threshold=threshold),
                    f"alert_set({actor}, {key}, {enabled}, {threshold!r})")

    @rule(actor=actors, keys=st.lists(any_account, unique=True, max_size=4), enabled=st.booleans(),
          threshold=st.one_of(st.just("0.00"), amounts))
    def set_alerts_for_many(self, actor, keys, enabled, threshold):
        reasons = self.model.set_alerts(ACTORS[actor], keys, enabled=enabled, threshold=threshold)
        self.expect(reasons, lambda: services.alert_set_many(actor=self.users[actor],
                                                             accounts=[self.account(k) for k in keys],
                                                             enabled=enabled, threshold=threshold),
                    f"alert_set_many({actor}, {keys}, {enabled}, {threshold!r})")

    @rule(days=st.sampled_from([1, 1, 1, 1, 2, 5, 16]), daily_job=mostly(st.just(True), st.just(False)))
    def days_pass(self, days, daily_job):
        """Time passes, a day at a time; the daily reminder job runs each morning (or is down: ``daily_job``)."""
        for _ in range(days):
            self.now += timedelta(days=1)
            self.model.advance(1)
            assert timezone.localdate() == self.model.today
            if daily_job:
                self.send_alert_reminders()

    @rule()
    def send_alert_reminders(self):
        expected = self.model.send_reminders()
        assert services.send_alert_reminders() == expected
        SEEN["reminders sent"] += expected

    # --- after every step ---------------------------------------------------------------------------

    @invariant()
    def every_figure_matches_the_model(self):
        rows = {a.pk: a for a in selectors.with_figures(Account.objects.filter(pk__in=self.pks.values()))}
        summaries = {ent: selectors.credit_summary(enterprise) for ent, enterprise in self.enterprises.items()}
        for ent, summary in summaries.items():
            assert summary == {
                "total_credit_limit": self.model.total_credit(ent),
                "allocated": self.model.allocated(ent),
                "overdue": self.model.enterprise_overdue(ent),
                "maximum_quota_allocable": self.model.maximum_quota_allocable(ent),
            }, ent
        for key, pk in self.pks.items():
            a = rows[pk]
            ent = self.model.accounts[key].enterprise
            got = {
                "own_cash": a.own_cash,
                "transfer_book_balance": a.transfer_book_balance,
                "credit_limit": a.credit_limit,
                "outstanding_balance": a.outstanding_balance,
                "overdue_amount": a.overdue_amount,
                "cash_balance": a.cash_balance_value,
                "available_credit": a.available_credit_value,
                "transferable_amount": selectors.transferable_amount(a),
                "lowest_credit_limit": selectors.lowest_credit_limit(a),
                "highest_credit_limit": selectors.highest_credit_limit(
                    a, summaries[ent]["maximum_quota_allocable"]),
                "alert_enabled": a.alert_enabled,
                "alert_threshold": a.alert_threshold,
            }
            assert got == self.model.figures(key), key
            assert a.cash_balance == a.cash_balance_value and a.available_credit == a.available_credit_value
        # The overdue amount of one account (in turn) through the one-account selector too.
        key = ALL[next(self._turn) % len(ALL)]
        assert selectors.overdue_amount(rows[self.pks[key]]) == self.model.accounts[key].overdue(self.model.today), key
        # Pairs: remaining revocable and withdrawable amount of every pair (R-TR-3, R-TR-4).
        pairs = {(self.keys_by_pk[p.source_id], self.keys_by_pk[p.target_id]): p
                 for p in TransferPair.objects.filter(source_id__in=self.pks.values())}
        assert set(pairs) == set(self.model.pairs)
        for (source, target), pair in pairs.items():
            assert pair.remaining_revocable == self.model.pairs[(source, target)], (source, target)
            assert selectors.withdrawable_amount(source=rows[self.pks[source]], target=rows[self.pks[target]],
                                                 pair=pair) == self.model.withdrawable(source, target)
        # Records (R-TR-6, R-CR-7), alerts and reminders that went out (R-AL-3, R-AL-5).
        events = {(self.keys_by_pk[r["account"]], r["kind"]): r["n"] for r in
                  AlertEvent.objects.filter(account_id__in=self.pks.values()).values("account", "kind")
                  .annotate(n=Count("id")).order_by()}
        records = Counter()  # R-TR-6: every transfer and withdrawal in and out of the account
        for payer, payee in TransferRecord.objects.filter(payer_id__in=self.pks.values()).values_list("payer", "payee"):
            records[payer] += 1
            records[payee] += 1
        changes = {}
        for ent, enterprise in self.enterprises.items():
            for r in (selectors.credit_change_records(enterprise).values("account").annotate(n=Count("id"))
                      .order_by()):
                changes[self.keys_by_pk.get(r["account"], ent)] = r["n"]
            assert changes.get(ent, 0) == self.model.enterprise_changes[ent], ent
        for key, pk in self.pks.items():
            state = self.model.accounts[key]
            assert events.get((key, AlertEvent.Kind.ALERT), 0) == state.alerts, key
            assert events.get((key, AlertEvent.Kind.REMINDER), 0) == state.reminders, key
            assert changes.get(key, 0) == state.credit_changes, key
            assert records.get(pk, 0) == state.transfer_records, key
        contract = CreditContract.objects.filter(enterprise=self.enterprises[E]).first()
        expected = self.model.contracts.get(E)
        assert (contract and (contract.status, contract.total_credit_limit)) == \
            (expected and (expected.status, expected.total))
        assert ledger_differences() == []
        SEEN["state: maximum quota allocable < 0"] += self.model.maximum_quota_allocable(E) < 0
        SEEN["state: some account overdue"] += any(a.overdue(self.model.today) > 0 for a in self.model.accounts.values())
        SEEN["state: a pair with nothing withdrawable"] += any(
            self.model.withdrawable(*pair) == 0 for pair in self.model.pairs)


@pytest.mark.django_db
def test_money_rules_match_reference_model_R_MON_2_R_MON_5_R_MON_6_R_CR_3_R_CR_4_R_CR_5_R_TR_2_R_TR_4_R_AL_3_R_AL_5():
    """Random operation sequences: the services and the reference model agree on every figure,
    every refusal and every alert after every step (SPEC 2 to 5: R-MON-1..6, R-CR-1..7, R-TR-1..8, R-AL-1..5)."""
    SEEN.clear()
    run_state_machine_as_test(MoneyMachine, settings=SETTINGS)
    for k, v in sorted(SEEN.items(), key=str): print(k, v)
