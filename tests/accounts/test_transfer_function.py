"""The PostgreSQL transfer function (accounts/sql/eac_transfer_create_v1.sql) against the Python path.

On PostgreSQL ``services.transfer_create`` first calls ``eac_transfer_create``, which writes the whole transfer in
one statement when it goes through and sends no alert, and otherwise writes nothing and leaves the decision to the
Python path (``services.transfers._transfer_create``), the reference that also runs every transfer on SQLite. So the function
must never accept what the Python path refuses, and what it writes must be exactly what the Python path writes.

The differential test draws states where every rule of a transfer is near its boundary (R-TR-1, R-TR-2, R-ORG-5,
R-CR-6, R-TR-7, R-AL-3), runs the same request once with the function and once without it, from the same state,
and compares the answers (the record, or the refusal with its message and figures) and everything written.
"""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import fastsql, selectors, services
from accounts.models import Account, LedgerEntry, Operation, TransferPair, TransferRecord
from core.errors import DomainError
from core.models import AuditEvent, IdempotencyKey
from tests.books import books, make_overdue
from tests.factories import fund, make_account, make_enterprise, spend

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

D = Decimal


class _Rollback(Exception):
    pass


def _when(value):
    """An alert sent by a run is stamped with the run's time: compare when it was set, not the instant."""
    if not isinstance(value, datetime):
        return value
    return "this run" if value > timezone.now() - timedelta(minutes=10) else "before"


def _written() -> dict:
    """Everything a transfer writes, with the ids of new rows replaced by what they point to (sequences are not
    rolled back with a savepoint, so the two runs give their rows different ids)."""
    snapshot = books()
    snapshot["accounts"] = [tuple(_when(value) for value in row) for row in snapshot["accounts"]]
    record = TransferRecord.objects.order_by("-id").first()
    operation = Operation.objects.order_by("-id").first()
    audit = AuditEvent.objects.order_by("-id").first()
    key = IdempotencyKey.objects.order_by("-id").first()
    snapshot["last_record"] = record and (record.kind, record.payer_id, record.payee_id, record.amount, record.remark,
                                          record.actor_id, record.operation_id == operation.pk)
    snapshot["last_operation"] = operation and (operation.kind, operation.external_amount, operation.actor_id,
                                                operation.description, sorted(LedgerEntry.objects.filter(
                                                    operation=operation).values_list("account_id", "bucket", "amount")))
    snapshot["last_audit"] = audit and (audit.enterprise_id, audit.actor_id, audit.action, audit.object_type,
                                        audit.object_id == str(record.pk) if record else audit.object_id,
                                        audit.object_repr == f"TransferRecord object ({record.pk})" if record else None,
                                        audit.before, audit.after, audit.ip_address)
    snapshot["last_key"] = key and (key.key, key.operation, key.request_fingerprint, key.result_type,
                                    key.result_id == (record.pk if record else None))
    snapshot["pairs"] = sorted(TransferPair.objects.values_list("source_id", "target_id", "remaining_revocable",
                                                                "total_transferred"))
    return snapshot


def _outcome(call) -> tuple:
    try:
        record = call()
    except DomainError as error:
        return ("refused", type(error).__name__, str(error), getattr(error, "field", None), getattr(error, "code", None))
    # The record and both of its accounts as the caller sees them: every column the rules read, and the company.
    accounts = tuple(tuple(_when(getattr(account, name)) for name in fastsql.ACCOUNT_COLUMNS if name != "id")
                     + (account.enterprise.company_id if account.enterprise_id else None,)
                     for account in (record.payer, record.payee))
    return ("transferred", record.kind, record.payer_id, record.payee_id, record.amount, record.remark,
            record.actor_id, record.operation_id is not None, accounts)


def _run_both(settings_, call) -> tuple[tuple, tuple]:
    """``call()`` with the function and then without it, each from the same state (rolled back after).

    Each result is (answer, what was written); the first also says whether the Python path had to decide.
    """
    results = []
    original = services.transfers._transfer_create
    python_path = []

    def spy(**kwargs):
        python_path.append(kwargs)
        return original(**kwargs)

    for enabled in (True, False):
        settings_.EAC_TRANSFER_FUNCTION = enabled
        python_path.clear()
        services.transfers._transfer_create = spy
        try:
            with transaction.atomic():
                outcome = _outcome(call)
                results.append((outcome, _written(), bool(python_path) if enabled else True))
                raise _Rollback
        except _Rollback:
            pass
        finally:
            services.transfers._transfer_create = original
    return results[0], results[1]


def test_a_plain_transfer_is_one_call_of_the_function_and_writes_what_the_python_path_writes_R_TR_3(
        settings, monkeypatch):
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "500.00")
    b = make_account(enterprise=enterprise)
    python_path = []
    original = services.transfers._transfer_create
    monkeypatch.setattr(services.transfers, "_transfer_create", lambda **kw: python_path.append(kw) or original(**kw))

    def call():
        return services.transfer_create(actor=admin, payer=a.pk, payee=b.pk, amount="120.50", remark="rent",
                                        idempotency_key="plain-1")

    with_function, without = _run_both(settings, call)
    assert len(python_path) == 1  # the run without the function only
    assert with_function[:2] == without[:2]
    outcome, written, _ = with_function
    assert outcome[0] == "transferred" and outcome[4] == D("120.50")
    assert written["last_audit"][6:8] == (
        {"payer": {"own_cash": "500.00", "transfer_book_balance": "0.00", "credit_limit": "0.00",
                   "outstanding_balance": "0.00"},
         "payee": {"own_cash": "0.00", "transfer_book_balance": "0.00", "credit_limit": "0.00",
                   "outstanding_balance": "0.00"}},
        {"payer": {"own_cash": "379.50", "transfer_book_balance": "0.00", "credit_limit": "0.00",
                   "outstanding_balance": "0.00"},
         "payee": {"own_cash": "0.00", "transfer_book_balance": "120.50", "credit_limit": "0.00",
                   "outstanding_balance": "0.00"},
         "amount": "120.50"})


def test_the_function_leaves_a_used_key_to_the_python_path_which_replays_it_R_TR_7(settings):
    settings.EAC_TRANSFER_FUNCTION = True
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "500.00")
    b = make_account(enterprise=enterprise)
    first = services.transfer_create(actor=admin, payer=a, payee=b, amount="10.00", remark="x", idempotency_key="k")
    again = services.transfer_create(actor=admin, payer=a, payee=b, amount="10.00", remark="x", idempotency_key="k")
    assert again.pk == first.pk
    assert Account.objects.get(pk=a.pk).own_cash == D("490.00")
    with pytest.raises(DomainError):
        services.transfer_create(actor=admin, payer=a, payee=b, amount="11.00", remark="x", idempotency_key="k")


def _account_of_kind(kind: str, enterprise):
    """An account of ``enterprise`` ("same"), or one that may not take part in its fund operations."""
    if kind == "other enterprise":
        return make_account(enterprise=make_enterprise(name="Other")[0])
    if kind == "no enterprise":
        return make_account(company_id=enterprise.company_id)
    return make_account(enterprise=enterprise, company_id={"other company": "OTHER-CO", "unverified": ""}.get(kind))


def _differential(settings_, *, payer=None, overdue=False, payer_flag=None, payee_flag=None, payee_kind="same",
                  payer_kind="same", actor_kind="own", alerts=((False, "0.00", False), (False, "0.00", False)),
                  amount="10.00", key=None, remark="for rent") -> tuple:
    """Build the state, run the request with and without the function, roll everything back; both results."""
    try:
        with transaction.atomic():
            enterprise, ma, admin = make_enterprise()
            if actor_kind == "other enterprise's administrator":
                admin = make_enterprise(name="Elsewhere")[2]
            if payer_kind != "same" and key in ("used same", "used other"):
                key = "fresh"  # the earlier transfer with the key needs a payer that may transfer
            a = _account_of_kind(payer_kind, enterprise)
            b = _account_of_kind(payee_kind, enterprise)
            fund(a, "400.00")
            if key in ("used same", "used other"):
                services.transfer_create(actor=admin, payer=a, payee=b if payee_kind == "same" else ma,
                                         amount="1.00", remark="for rent", idempotency_key="used")
            if overdue:
                spend(a, "500.00")  # 100.00 billed
                make_overdue(a, days=0 if overdue == "due today" else 1)
            if payer:
                Account.objects.filter(pk=a.pk).update(**{k: D(v) for k, v in payer.items()})
            for account, (enabled, threshold, sent) in zip((a, b), alerts):
                Account.objects.filter(pk=account.pk).update(
                    alert_enabled=enabled, alert_threshold=D(threshold),
                    alert_sent_at=timezone.now() - timedelta(hours=1) if sent else None)
            for account, flag in ((a, payer_flag), (b, payee_flag)):
                if flag:
                    Account.objects.filter(pk=account.pk).update(**{flag: True})
            request_key = {"fresh": "fresh-key", "used same": "used", "used other": "used"}.get(key)
            request_amount = "1.00" if key == "used same" else amount
            request_remark = "for rent" if key == "used same" else remark
            payee = b if key != "used same" or payee_kind == "same" else ma

            def call():
                return services.transfer_create(actor=admin, payer=a.pk, payee=payee.pk, amount=request_amount,
                                                remark=request_remark, idempotency_key=request_key)

            results = _run_both(settings_, call)
            raise _Rollback(results)
    except _Rollback as rollback:
        return rollback.args[0]


# One state per rule, where that rule alone decides (the function must leave it to Python, or agree).
SCENARIOS = {
    "plain": {},
    "payer pays on behalf (R-CR-6)": {"payer_flag": "pay_on_behalf"},
    "payer risk flag (R-CR-6)": {"payer_flag": "risk_flag"},
    "payee pays on behalf (R-CR-6)": {"payee_flag": "pay_on_behalf"},
    "payee risk flag (R-CR-6)": {"payee_flag": "risk_flag"},
    "payee of another enterprise (R-TR-1)": {"payee_kind": "other enterprise"},
    "payee of no enterprise, of the same company (R-TR-1)": {"payee_kind": "no enterprise"},
    "payee of another company (R-ORG-5)": {"payee_kind": "other company"},
    "payee unverified (R-ORG-5)": {"payee_kind": "unverified"},
    "payer of another enterprise (R-TR-1)": {"payer_kind": "other enterprise"},
    "payer of no enterprise, of the same company (R-TR-1)": {"payer_kind": "no enterprise"},
    "payer of another company (R-ORG-5)": {"payer_kind": "other company"},
    "payer unverified (R-ORG-5)": {"payer_kind": "unverified"},
    "an administrator of another enterprise (R-TR-1)": {"actor_kind": "other enterprise's administrator"},
    "payer overdue (R-TR-2)": {"overdue": True, "payer": {"own_cash": "300.00"}},
    "payer's bill due today, not overdue yet (R-TR-2)": {"overdue": "due today", "payer": {"own_cash": "300.00"}},
    "own cash decides, at it (R-TR-2)": {"payer": {"own_cash": "100.00", "transfer_book_balance": "50.00"},
                                         "amount": "100.00"},
    "own cash decides, a cent over (R-TR-2)": {"payer": {"own_cash": "100.00", "transfer_book_balance": "50.00"},
                                               "amount": "100.01"},
    "available credit decides, at it (R-TR-2)": {"payer": {"own_cash": "100.00", "outstanding_balance": "30.00"},
                                                 "amount": "70.00"},
    "available credit decides, a cent over (R-TR-2)": {
        "payer": {"own_cash": "100.00", "outstanding_balance": "30.00"}, "amount": "70.01"},
    "credit limit counts in available credit (R-TR-2)": {
        "payer": {"own_cash": "100.00", "outstanding_balance": "30.00", "credit_limit": "50.00"}, "amount": "100.00"},
    "payer falls below its alert threshold (R-AL-3)": {
        "payer": {"own_cash": "100.00"}, "alerts": ((True, "50.00", False), (False, "0.00", False)), "amount": "60.00"},
    "payer stays above its alert threshold": {
        "payer": {"own_cash": "100.00"}, "alerts": ((True, "50.00", False), (False, "0.00", False)), "amount": "40.00"},
    "payer already alerted, still below (R-AL-3)": {
        "payer": {"own_cash": "100.00"}, "alerts": ((True, "500.00", True), (False, "0.00", False)), "amount": "40.00"},
    "payer lands on its threshold, not below (R-AL-3)": {
        "payer": {"own_cash": "100.00"}, "alerts": ((True, "60.00", False), (False, "0.00", False)), "amount": "40.00"},
    "payer marked alerted, lands on its threshold (R-AL-3)": {
        "payer": {"own_cash": "100.00"}, "alerts": ((True, "60.00", True), (False, "0.00", False)), "amount": "40.00"},
    "payee alerted, recovers exactly to its threshold (R-AL-3)": {
        "alerts": ((False, "0.00", False), (True, "10.00", True)), "amount": "10.00"},
    "payee recovers above its threshold (R-AL-3)": {
        "alerts": ((False, "0.00", False), (True, "5.00", True)), "amount": "10.00"},
    "payee alerted, still below (R-AL-3)": {
        "alerts": ((False, "0.00", False), (True, "50.00", True)), "amount": "10.00"},
    "a fresh idempotency key (R-TR-7)": {"key": "fresh"},
    "a used key, the same request (R-TR-7)": {"key": "used same"},
    "a used key, another request (R-TR-7)": {"key": "used other"},
    "bad amount": {"amount": "abc"},
    "no remark (R-TR-1)": {"remark": ""},
}


# Where the transfer goes through and no alert is sent or cleared: the function must do it alone (a function
# that left these to Python would be correct, but slow).
ONE_CALL = {"plain", "own cash decides, at it (R-TR-2)", "available credit decides, at it (R-TR-2)",
            "credit limit counts in available credit (R-TR-2)", "payer stays above its alert threshold",
            "payer already alerted, still below (R-AL-3)", "payee alerted, still below (R-AL-3)",
            "a fresh idempotency key (R-TR-7)", "payer's bill due today, not overdue yet (R-TR-2)",
            "payer lands on its threshold, not below (R-AL-3)"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_function_agrees_with_the_python_path_rule_by_rule_R_TR_1_R_TR_2_R_TR_7_R_AL_3(settings, scenario):
    with_function, without = _differential(settings, **SCENARIOS[scenario])
    assert with_function[:2] == without[:2]
    python_decided = with_function[2]
    assert python_decided == (scenario not in ONE_CALL)


MONEY = st.sampled_from(["0.00", "0.01", "30.00", "99.99", "100.00", "250.00"])
MOSTLY_NONE = st.sampled_from([None] * 6 + ["pay_on_behalf", "risk_flag"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(
    payer=st.fixed_dictionaries({"own_cash": MONEY, "transfer_book_balance": MONEY, "credit_limit": MONEY,
                                 "outstanding_balance": MONEY}),
    overdue=st.sampled_from([False, False, False, True]),
    payer_flag=MOSTLY_NONE,
    payee_flag=MOSTLY_NONE,
    payee_kind=st.sampled_from(["same"] * 6 + ["other enterprise", "other company", "unverified"]),
    alerts=st.lists(st.tuples(st.booleans(), st.sampled_from(["0.00", "50.00", "200.00", "1000.00"]), st.booleans()),
                    min_size=2, max_size=2),
    amount=st.sampled_from(["0.01", "30.00", "99.99", "100.00", "100.01", "250.00", "350.00", "-1", "abc"]),
    key=st.sampled_from([None, "fresh", "used same", "used other"]),
)
def test_the_function_answers_and_writes_exactly_as_the_python_path_R_TR_1_R_TR_2_R_TR_7_R_AL_3(
        settings, payer, overdue, payer_flag, payee_flag, payee_kind, alerts, amount, key):
    with_function, without = _differential(settings, payer=payer, overdue=overdue, payer_flag=payer_flag,
                                           payee_flag=payee_flag, payee_kind=payee_kind, alerts=alerts,
                                           amount=amount, key=key)
    assert with_function[:2] == without[:2]


def test_the_functions_rule_of_transferable_amount_is_the_selectors_R_TR_2(settings):
    """At the boundary, to the cent: the function takes the transferable amount and refuses a cent more."""
    settings.EAC_TRANSFER_FUNCTION = True
    enterprise, ma, admin = make_enterprise()
    a = fund(make_account(enterprise=enterprise), "300.00")
    b = make_account(enterprise=enterprise)
    Account.objects.filter(pk=a.pk).update(outstanding_balance=D("80.00"), credit_limit=D("0.00"))
    a.refresh_from_db()
    limit = selectors.transferable_amount(a)
    assert limit == D("220.00")
    assert fastsql.transfer_in_one_call(
        enterprise_id=enterprise.pk, actor_id=admin.pk, payer_id=a.pk, payee_id=b.pk, amount=limit + D("0.01"),
        remark="r", on=selectors.today(), at=timezone.now(), ip=None, claim=None, result_type="accounts.TransferRecord",
    ) is None
    done = fastsql.transfer_in_one_call(
        enterprise_id=enterprise.pk, actor_id=admin.pk, payer_id=a.pk, payee_id=b.pk, amount=limit,
        remark="r", on=selectors.today(), at=timezone.now(), ip=None, claim=None, result_type="accounts.TransferRecord")
    assert done is not None
    assert done.accounts[a.pk].own_cash == D("80.00")
    assert done.accounts[b.pk].transfer_book_balance == D("220.00")


@pytest.mark.django_db(transaction=True)
def test_one_key_on_two_pairs_at_once_moves_money_once_R_TR_7(settings):
    """Two requests with one key and different accounts, at the same moment, each in autocommit (the function's
    own transaction): one transfers; the other finds the key taken (by the function's read, or by the key's
    unique index if both wrote at once, which rolls its call back) and is refused as another request."""
    import threading

    from django.db import connection

    settings.EAC_TRANSFER_FUNCTION = True
    enterprise, ma, admin = make_enterprise()
    a, b, c, d = (make_account(enterprise=enterprise) for _ in range(4))
    fund(a, "100.00")
    fund(c, "100.00")
    start = threading.Barrier(2)
    results = []

    def request(payer, payee):
        try:
            start.wait(10)
            results.append(services.transfer_create(actor=admin, payer=payer.pk, payee=payee.pk, amount="10.00",
                                                    remark="race", idempotency_key="one-key"))
        except DomainError as error:
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=pair) for pair in ((a, b), (c, d))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    records = [r for r in results if isinstance(r, TransferRecord)]
    refusals = [r for r in results if isinstance(r, DomainError)]
    assert len(records) == 1 and len(refusals) == 1
    assert refusals[0].code == "idempotency_mismatch"
    assert TransferRecord.objects.filter(remark="race").count() == 1
    assert IdempotencyKey.objects.filter(key="one-key").count() == 1
    moved = sorted(Account.objects.filter(pk__in=[a.pk, c.pk]).values_list("own_cash", flat=True))
    assert moved == [D("90.00"), D("100.00")]
