"""Writes: every change of state of SPEC sections 1 to 5, one transaction each.

Each service takes keyword-only arguments, checks its rules inside its transaction on locked rows,
and either changes everything it must (balances, ledger, records, audit, alerts, outbox) or raises
``DomainError`` and changes nothing. Locks are taken in one fixed order: enterprise, then accounts by
primary key, then bills by age.
"""

import functools
import hashlib
import json
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from core.audit import audit_event, audit_json
from core.context import current_ip
from core.db import atomic_service, drop_broken_connection, is_connection_lost, is_retryable
from core.errors import DomainError, PermissionDenied
from core.models import IDEMPOTENCY_KEY_CONSTRAINT, IdempotencyKey
from core.money import ZERO, format_money, parse_amount
from core.notifications import notify_account

from . import fastsql, selectors
from .models import (
    Account,
    AlertEvent,
    Bill,
    Charge,
    CreditChangeRecord,
    CreditContract,
    Enterprise,
    Folder,
    Invitation,
    LedgerEntry,
    Operation,
    TopUp,
    TransferPair,
    TransferRecord,
    User,
)
from .signals import company_changed, membership_changed

M = format_money

# Messages (constants, so tests can assert them). Each names the figure it is about.
MSG_NOT_ADMIN = "Only the enterprise administrator of this enterprise can do this (R-ORG-6)."
MSG_NOT_ACCOUNT_MANAGER = "Only an account manager can do this in the back office (R-ORG-6)."
MSG_NOT_IN_ENTERPRISE = "Account {account} is not an account of this enterprise."
MSG_OTHER_COMPANY = ("Account {account} is verified as a different company from the enterprise, so fund "
                     "operations and sharing with it are refused (R-ORG-5).")
MSG_DISABLED = ("Credit control and self-service transfer are disabled for account {account} ({reason}). "
                "Contact your business manager (R-CR-6).")
MSG_SAME_ACCOUNT = "Choose two different accounts (R-TR-1)."
MSG_REMARK_REQUIRED = "Enter a remark of 1 to 200 characters (R-TR-1)."
MSG_REMARK_TOO_LONG = "A remark has at most 200 characters; this one has {length} (R-TR-1)."
MSG_PAYER_OVERDUE = "Account {account} has an overdue amount of {overdue}; it cannot transfer until it is paid (R-TR-2)."
MSG_OVER_TRANSFERABLE = "Transferable amount is {limit}; you asked for {amount} (R-TR-2)."
MSG_NO_TRANSFER = "Account {source} never transferred to account {target}, so there is nothing to withdraw (R-TR-4)."
MSG_OVER_WITHDRAWABLE = "Withdrawable amount is {limit}; you asked for {amount} (R-TR-4)."
MSG_CONTRACT_PENDING = ("The enterprise's credit control contract is pending confirmation, so credit limits "
                        "cannot be set yet: the management account must confirm it on the Contracts page (R-CR-1).")
MSG_NO_CONTRACT = ("The enterprise has no credit control contract, so credit limits cannot be set: ask your "
                   "account manager to grant a total credit limit (R-CR-1).")
MSG_LIMIT_UNCHANGED = "The new credit limit equals the current credit limit {current}; nothing to change."
MSG_OVER_ALLOCABLE = ("Maximum quota allocable is {allocable}, so the highest credit limit allowed is {highest}; "
                      "you asked for {amount} (R-CR-4).")
MSG_DECREASE_TOO_LOW = ("The lowest credit limit allowed is {lowest}: available credit must stay above 0.00 "
                        "(cash balance {cash} + new limit - outstanding {outstanding}); you asked for {amount} (R-CR-5).")
MSG_IDEMPOTENCY_MISMATCH = "This request key was already used for a different operation; reload the form and try again."
MSG_CONTRACT_NOT_PENDING = "This credit control contract is already confirmed."
MSG_EAC_DISABLED = "The Enterprise Account Center is not enabled for this enterprise (R-ORG-2)."
MSG_FOLDER_DEPTH = "Folders nest at most 5 levels below the root folder (R-ORG-3)."
MSG_FOLDER_NAME = "A folder name has 1 to 24 characters (R-ORG-3)."
MSG_FOLDER_NAME_TAKEN = "A folder named {name} already exists in this folder (R-ORG-3)."
MSG_FOLDER_NOT_EMPTY = "Folder {name} is not empty: it has {folders} folders and {accounts} accounts (R-ORG-4)."
MSG_FOLDER_ROOT = "The root folder cannot be renamed or deleted."
MSG_ALREADY_MEMBER = "Account {account} is already in a resource directory."
MSG_ALREADY_INVITED = "Account {account} already has an open invitation."
MSG_INVITATION_CLOSED = "This invitation is {status}; it can no longer be answered."
MSG_UNKNOWN_ACCOUNT = "No account has the ID {account_id}."
MSG_REMOVE_MANAGEMENT = "The management account cannot be removed from its own directory."
MSG_REMOVE_TRANSFER_BOOK = ("Account {account} still has a transfer book balance of {amount}: withdraw it to its "
                            "source accounts (or let the account spend it) before removing the account (R-TR-4).")
MSG_REMOVE_CREDIT = "Account {account} still has a credit limit of {limit}; set it to 0.00 before removing it."
MSG_NO_ACCOUNTS = "Select at least one account."


# ---------------------------------------------------------------------------------------------
# Permissions (R-ORG-6)
# ---------------------------------------------------------------------------------------------

def require_enterprise_admin(actor, enterprise_id=None) -> int:
    """The actor is an enterprise administrator (of ``enterprise_id`` when given); returns its enterprise id."""
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_enterprise_admin:
        raise PermissionDenied(MSG_NOT_ADMIN)
    own = actor.account.enterprise_id
    if enterprise_id is not None and own != enterprise_id:
        raise PermissionDenied(MSG_NOT_ADMIN)
    return own


def require_account_manager(actor) -> None:
    """Back office operations: account managers (staff), or the system (``actor=None``)."""
    if actor is not None and not getattr(actor, "is_staff", False):
        raise PermissionDenied(MSG_NOT_ACCOUNT_MANAGER)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

def _lock_accounts(*pks) -> dict[int, Account]:
    """Lock the accounts' rows in primary key order (R-TR-7) and return them fresh.

    ``FOR NO KEY UPDATE``: it serializes services on the account as ``FOR UPDATE`` does, but does not
    block the ``FOR KEY SHARE`` lock PostgreSQL takes on a row when another transaction inserts a row
    that references it (a ledger entry, an audit event); with ``FOR UPDATE`` those inserts waited on
    the lock holder, and waits in opposite directions became deadlocks.
    """
    pks = sorted({pk.pk if isinstance(pk, Account) else int(pk) for pk in pks})
    rows = (Account.objects.select_for_update(of=("self",), no_key=True).select_related("enterprise")
            .filter(pk__in=pks).order_by("pk"))
    found = {a.pk: a for a in rows}
    missing = [pk for pk in pks if pk not in found]
    if missing:
        raise DomainError(f"Account {missing[0]} does not exist.")
    return found


def _lock_enterprise(enterprise_id) -> Enterprise:
    """Lock the enterprise row (``FOR NO KEY UPDATE``, see ``_lock_accounts``).

    Every money service inserts an audit event referencing the enterprise, which takes ``FOR KEY SHARE``
    on this row. A ``FOR UPDATE`` lock here (credit limit set) made a transfer holding account locks wait
    for it while the credit limit change waited for those accounts: a deadlock.
    """
    return Enterprise.objects.select_for_update(no_key=True).get(pk=enterprise_id)


def lock_directory(enterprise_id) -> Enterprise:
    """Serialize, per enterprise, changes of directory membership with the resolution of folder scopes.

    Moving, admitting or removing an account and sharing an asset with folders both take this lock first
    (before accounts and assets), so a share never misses an account that moved into its folder meanwhile,
    nor keeps one that moved out (R-SH-2).
    """
    return _lock_enterprise(enterprise_id)


def _post(operation: Operation, changes: list[tuple[Account, str, Decimal]], *, at) -> None:
    """Apply signed changes to locked accounts' buckets and write their ledger rows (R-MON-4)."""
    entries = []
    touched: dict[int, tuple[Account, set]] = {}
    for account, bucket, delta in changes:
        if delta == 0:
            continue
        field = LedgerEntry.apply_to(account, bucket, delta)
        entries.append(LedgerEntry(operation=operation, account=account, bucket=bucket, amount=delta, created_at=at))
        touched.setdefault(account.pk, (account, set()))[1].add(field)
    LedgerEntry.objects.bulk_create(entries)
    for account, fields in touched.values():
        account.save(update_fields=sorted(fields))


def _fingerprint(operation: str, params: dict) -> str:
    blob = json.dumps({"op": operation, **{k: str(v) for k, v in params.items()}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class _Replay(Exception):
    def __init__(self, result):
        self.result = result


class IdempotencyClaim:
    """A request's idempotency key (R-TR-7): the first request with a key runs, a repeat gets its result.

    The key row is written with the result, in the request's transaction (one INSERT, no savepoint).
    Two requests racing with one key: the second either finds the key once it got the rows the first
    held (and replays), or its INSERT of the key conflicts and the whole transaction is rolled back,
    after which ``replay_if_taken`` finds the first result.
    """

    def __init__(self, key: str, operation: str, fingerprint: str, model, *, at):
        self.key = key
        self.operation = operation
        self.fingerprint = fingerprint
        self.model = model
        self.at = at

    def replay(self, operation: str, fingerprint: str, result_id) -> None:
        """The key was used before: raise ``_Replay`` with its first result, or refuse a different request."""
        if operation != self.operation or fingerprint != self.fingerprint:
            raise DomainError(MSG_IDEMPOTENCY_MISMATCH, code="idempotency_mismatch")
        raise _Replay(self.model.objects.get(pk=result_id))

    def check(self) -> None:
        """Replay when the key is known already (one SELECT)."""
        row = IdempotencyKey.objects.filter(key=self.key).values_list(
            "operation", "request_fingerprint", "result_id").first()
        if row is not None:
            self.replay(*row)

    def store(self, result) -> None:
        IdempotencyKey.objects.create(key=self.key, operation=self.operation, request_fingerprint=self.fingerprint,
                                      result_type=result._meta.label, result_id=result.pk, created_at=self.at)

    def replay_if_taken(self):
        """After a rollback: the first result if another request stored this key meanwhile, else ``None``."""
        try:
            self.check()
        except _Replay as replay:
            return replay
        return None


def idempotency_claim(operation: str, model, idempotency_key: str | None, kwargs: dict, *,
                      at=None) -> IdempotencyClaim | None:
    """The claim of a request to ``operation`` with these service arguments, or ``None`` without a key."""
    if not idempotency_key:
        return None
    return IdempotencyClaim(str(idempotency_key)[:80], operation, _fingerprint(operation, _request_params(kwargs)),
                            model, at=at or timezone.now())


def idempotent(operation: str, model, *, stores_key_itself: bool = False):
    """Decorator: the wrapped service's ``idempotency_key`` makes it run once per key (R-TR-7).

    With ``stores_key_itself`` the service receives the claim as ``idempotency`` (or ``None``) and reads
    and writes the key in its own statements (see ``accounts.fastsql``); otherwise the key is checked
    before the service runs and stored after it, in the same transaction.
    """

    def decorate(func):
        def wrapper(*, idempotency_key: str | None = None, **kwargs):
            claim = idempotency_claim(operation, model, idempotency_key, kwargs)
            try:
                return _run_idempotent(func, claim, stores_key_itself, kwargs)
            except _Replay as replay:
                return replay.result
            except (IntegrityError, DomainError):
                # A concurrent request with the same key won (its key conflicted with ours, or it changed
                # the figures our checks refused on): the first result, once it committed.
                replay = claim.replay_if_taken() if claim is not None else None
                if replay is None:
                    raise
                return replay.result

        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        wrapper.__wrapped__ = func
        return wrapper

    return decorate


# Parameters that are amounts: "1,000.00", "1000" and Decimal("1000.00") are the same request.
_AMOUNT_PARAMS = {"amount", "new_limit", "threshold", "total_credit_limit"}


def _request_params(kwargs: dict) -> dict:
    params = {}
    for name, value in kwargs.items():
        if hasattr(value, "pk"):
            value = value.pk
        elif name in _AMOUNT_PARAMS:
            try:
                value = parse_amount(value, allow_zero=True)
            except DomainError:
                pass  # the service itself refuses it, with the message for its field
        params[name] = value
    return params


@atomic_service
def _run_idempotent(func, claim: IdempotencyClaim | None, stores_key_itself: bool, kwargs):
    if stores_key_itself:
        return func(idempotency=claim, **kwargs)
    if claim is not None:
        claim.check()
    result = func(**kwargs)
    if claim is not None:
        claim.store(result)
    return result


def _check_fund_account(account: Account, enterprise_id: int) -> None:
    """R-TR-1 / R-ORG-5 / R-CR-6: the account may take part in fund operations of this enterprise."""
    if account.enterprise_id != enterprise_id:
        raise DomainError(MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), rule="R-TR-1")
    if not account.verified_company_id or account.verified_company_id != account.enterprise.company_id:
        raise DomainError(MSG_OTHER_COMPANY.format(account=account.account_id), rule="R-ORG-5")
    if account.credit_transfer_disabled:
        reason = "pay on behalf of an ecosystem partner" if account.pay_on_behalf else \
            "significant receivables with long-overdue history"
        raise DomainError(MSG_DISABLED.format(account=account.account_id, reason=reason), rule="R-CR-6")


def _clean_remark(remark) -> str:
    remark = (remark or "").strip()
    if not remark:
        raise DomainError(MSG_REMARK_REQUIRED, field="remark", rule="R-TR-1")
    if len(remark) > 200:
        raise DomainError(MSG_REMARK_TOO_LONG.format(length=len(remark)), field="remark", rule="R-TR-1")
    return remark


def _evaluate_alerts(accounts, *, at) -> None:
    """After a change of balances, send the low balance alerts that are due (R-AL-3)."""
    for account in accounts:
        if not account.alert_enabled:
            continue
        available = account.available_credit
        if available < account.alert_threshold:
            if account.alert_sent_at is None:
                account.alert_sent_at = at
                account.alert_reminders_sent = 0
                account.alert_last_reminder_on = timezone.localdate(at)
                account.save(update_fields=["alert_sent_at", "alert_reminders_sent", "alert_last_reminder_on"])
                AlertEvent.objects.create(account=account, kind=AlertEvent.Kind.ALERT, available_credit=available,
                                          threshold=account.alert_threshold, created_at=at)
                notify_account(
                    account, kind="low_balance_alert", console=True, at=at,
                    subject=f"Low balance alert for {account.name}",
                    body=(f"The available credit of account {account.account_id} is {M(available, currency=True)}, "
                          f"below your alert threshold of {M(account.alert_threshold, currency=True)}."),
                )
        elif account.alert_sent_at is not None:
            account.alert_sent_at = None
            account.alert_reminders_sent = 0
            account.save(update_fields=["alert_sent_at", "alert_reminders_sent"])


def _audit_money(actor, action, account: Account, before: dict, after: dict, *, obj, at):
    audit_event(actor=actor, action=action, obj=obj, enterprise=account.enterprise, before=before,
                after=after, at=at)


def _figures(account: Account) -> dict:
    return {
        "own_cash": account.own_cash,
        "transfer_book_balance": account.transfer_book_balance,
        "credit_limit": account.credit_limit,
        "outstanding_balance": account.outstanding_balance,
    }


# ---------------------------------------------------------------------------------------------
# Top-up and charge (R-MON-5, R-MON-6): back office and billing
# ---------------------------------------------------------------------------------------------

@idempotent("top_up", TopUp)
def top_up(*, actor, account, amount, description: str = "") -> TopUp:
    """Money paid into ``account``: pays unpaid bills oldest first, the rest to own cash (R-MON-6)."""
    require_account_manager(actor)
    amount = parse_amount(amount)
    at = timezone.now()
    account = _lock_accounts(account)[account.pk if isinstance(account, Account) else int(account)]
    before = _figures(account)
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
    operation = Operation.objects.create(kind=Operation.Kind.TOP_UP, external_amount=amount, actor=_user(actor),
                                         description=description[:200], created_at=at)
    _post(operation, [(account, "outstanding", -paid), (account, "own_cash", remaining)], at=at)
    record = TopUp.objects.create(account=account, operation=operation, amount=amount, paid_bills=paid,
                                  to_own_cash=remaining, created_at=at)
    _audit_money(actor, "top_up", account, before, _figures(account), obj=record, at=at)
    _evaluate_alerts([account], at=at)
    return record


@idempotent("charge", Charge)
def charge(*, actor, account, amount, description: str = "", at=None) -> Charge:
    """Spend ``amount``: transfer book balance first, then own cash, the rest as an unpaid bill (R-MON-5)."""
    require_account_manager(actor)
    amount = parse_amount(amount)
    at = at or timezone.now()
    account = _lock_accounts(account)[account.pk if isinstance(account, Account) else int(account)]
    return _charge_locked(actor=actor, account=account, amount=amount, description=description, at=at)


def _charge_locked(*, actor, account: Account, amount: Decimal, description: str, at) -> Charge:
    before = _figures(account)
    from_book = min(account.transfer_book_balance, amount)
    from_cash = min(account.own_cash, amount - from_book)
    billed = amount - from_book - from_cash
    operation = Operation.objects.create(kind=Operation.Kind.CHARGE, external_amount=-amount, actor=_user(actor),
                                         description=description[:200], created_at=at)
    _post(operation, [(account, "transfer_book", -from_book), (account, "own_cash", -from_cash),
                      (account, "outstanding", billed)], at=at)
    if billed > 0:
        Bill.objects.create(account=account, operation=operation, amount=billed, unpaid_amount=billed,
                            description=description[:200], created_at=at,
                            due_date=timezone.localdate(at) + timedelta(days=settings.EAC_BILL_DUE_DAYS))
    record = Charge.objects.create(account=account, operation=operation, amount=amount,
                                   from_transfer_book=from_book, from_own_cash=from_cash, billed=billed,
                                   description=description[:200], created_at=at)
    if actor is not None:
        _audit_money(actor, "charge", account, before, _figures(account), obj=record, at=at)
    # The balance changes now, whatever day the charge is billed for: the alert goes out now (R-AL-3), and
    # its day, not the billing day, is the day without a reminder (R-AL-5).
    _evaluate_alerts([account], at=timezone.now())
    return record


def _user(actor):
    return actor if isinstance(actor, User) else None


# ---------------------------------------------------------------------------------------------
# Transfer and withdrawal (R-TR-1 to R-TR-5, R-TR-7, R-TR-8)
# ---------------------------------------------------------------------------------------------

def _lock_two_accounts(first_pk: int, second_pk: int, **reads) -> tuple[Account, Account, fastsql.Locked]:
    """Both accounts locked, in the order asked, and what ``fastsql.lock_and_read`` read after the locks."""
    locked = fastsql.lock_and_read([first_pk, second_pk], on=selectors.today(), **reads)
    for pk in (first_pk, second_pk):
        if pk not in locked.accounts:
            raise DomainError(f"Account {pk} does not exist.")
    return locked.accounts[first_pk], locked.accounts[second_pk], locked


def _write_transfer_record(*, kind, payer: Account, payee: Account, amount: Decimal, remark: str, actor, at,
                           pair_change, audit_before: dict, audit_after: dict, idempotency) -> TransferRecord:
    """One set-based write of a transfer or withdrawal: operation, ledger, balances, pair, record, audit, key."""
    batch = fastsql.WriteBatch()
    fastsql.add_operation(batch, kind=kind, actor_id=actor.pk, description=remark, at=at)
    if kind == TransferRecord.Kind.TRANSFER:
        fastsql.add_postings(batch, [(payer, "own_cash", -amount), (payee, "transfer_book", amount)], at=at)
    else:
        fastsql.add_postings(batch, [(payer, "transfer_book", -amount), (payee, "own_cash", amount)], at=at)
    pair_change(batch)
    fastsql.add_transfer_record(batch, kind=kind, payer_id=payer.pk, payee_id=payee.pk, amount=amount, remark=remark,
                                actor_id=actor.pk, at=at)
    audit_after = {**{side: _figures(account) for side, account in audit_after.items()}, "amount": amount}
    fastsql.add_audit_event(batch, action=kind, object_type=TransferRecord._meta.label,
                            repr_prefix="TransferRecord object", enterprise_id=payer.enterprise_id, actor_id=actor.pk,
                            before_json=audit_json(audit_before), after_json=audit_json(audit_after),
                            ip=current_ip(), at=at)
    if idempotency is not None:
        fastsql.add_idempotency_key(batch, idempotency, result_type=TransferRecord._meta.label)
    ids = batch.run()
    return _transfer_record(kind=kind, record_id=ids["record"], operation_id=ids["op"], payer=payer, payee=payee,
                            amount=amount, remark=remark, actor=actor, at=at)


_RECORD_FIELDS = ["id", "kind", "payer_id", "payee_id", "amount", "remark", "actor_id", "operation_id", "created_at"]


def _is_idempotency_key_conflict(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == IDEMPOTENCY_KEY_CONSTRAINT


def _transfer_record(*, kind, record_id, operation_id, payer, payee, amount, remark, actor, at) -> TransferRecord:
    """The record just written, as a saved instance with its accounts and actor (no query)."""
    record = fastsql.model_from_row(TransferRecord, _RECORD_FIELDS, [
        record_id, kind, payer.pk, payee.pk, amount, remark, actor.pk, operation_id, at])
    record._state.fields_cache.update(payer=payer, payee=payee, actor=actor)  # what ``record.payer = ...`` caches
    return record


def transfer_create(*, actor, payer, payee, amount, remark, idempotency_key: str | None = None) -> TransferRecord:
    """Transfer ``amount`` of ``payer``'s own cash into ``payee``'s transfer book balance (R-TR-3).

    On PostgreSQL the common case (the transfer goes through, no alert to send) is one call of the database
    function ``eac_transfer_create``, in a transaction of its own (see ``_transfer_in_one_call``). Every other
    case, and every transfer on SQLite, runs ``_transfer_create``: the reference, which refuses with its
    message and figures, replays a used idempotency key and sends alerts.
    """
    if fastsql.transfer_function_enabled():
        record = _transfer_in_one_call(actor=actor, payer=payer, payee=payee, amount=amount, remark=remark,
                                       idempotency_key=idempotency_key)
        if record is not None:
            return record
    return _transfer_create(actor=actor, payer=payer, payee=payee, amount=amount, remark=remark,
                            idempotency_key=idempotency_key)


def _money_request(*, actor, first, second, amount, remark, second_field: str) -> tuple[Decimal, str, int, int, int]:
    """A transfer or withdrawal request read and checked before anything is locked: (amount, remark, the actor's
    enterprise, first pk, second pk), or a ``DomainError`` (R-MON-1, R-TR-1); two equal accounts are refused at
    ``second_field``."""
    amount = parse_amount(amount)
    remark = _clean_remark(remark)
    enterprise_id = require_enterprise_admin(actor)
    first_pk, second_pk = _pk(first), _pk(second)
    if first_pk == second_pk:
        raise DomainError(MSG_SAME_ACCOUNT, field=second_field, rule="R-TR-1")
    return amount, remark, enterprise_id, first_pk, second_pk


def _transfer_in_one_call(*, actor, payer, payee, amount, remark, idempotency_key) -> TransferRecord | None:
    """The transfer by ``eac_transfer_create`` (accounts/sql/), or ``None`` when ``_transfer_create`` must decide.

    ``None`` is answered, with nothing written, for input ``_transfer_create`` refuses, for a used idempotency
    key, a refusal of the rules, an alert to send or to clear, and a concurrent request that stored the same
    key first (its unique index refuses ours). The function locks and decides in one statement; outside a
    transaction it commits on its own (one round trip in all), inside one it runs in a savepoint.
    """
    kwargs = {"actor": actor, "payer": payer, "payee": payee, "amount": amount, "remark": remark}
    try:
        amount, remark, enterprise_id, payer_pk, payee_pk = _money_request(
            actor=actor, first=payer, second=payee, amount=amount, remark=remark, second_field="payee")
    except DomainError:
        return None  # refused by _transfer_create, with the same message (or replayed: see ``idempotent``)
    at = timezone.now()
    claim = idempotency_claim("transfer", TransferRecord, idempotency_key, kwargs, at=at)
    call = functools.partial(
        fastsql.transfer_in_one_call, enterprise_id=enterprise_id, actor_id=actor.pk, payer_id=payer_pk,
        payee_id=payee_pk, amount=amount, remark=remark, on=selectors.today(), at=at, ip=current_ip(), claim=claim,
        result_type=TransferRecord._meta.label)
    in_transaction = not connection.get_autocommit()
    try:
        if in_transaction:
            with transaction.atomic():  # a savepoint: a failed call leaves the caller's transaction usable
                done = call()
        else:
            done = call()
    except IntegrityError as exc:
        if not _is_idempotency_key_conflict(exc):
            raise  # a constraint the function should never have hit: a bug to see, not to hide
        return None  # the same key, stored meanwhile by another request: _transfer_create replays it
    except (OperationalError, InterfaceError) as exc:
        if in_transaction:
            raise
        if is_retryable(exc):
            return None  # deadlock or serialization failure: rolled back; _transfer_create runs (and retries)
        if claim is not None and is_connection_lost(exc):
            # Whether the call committed is unknown; the key tells: _transfer_create replays it or transfers.
            drop_broken_connection()
            return None
        raise  # without a key the outcome is unknown, as for a failed COMMIT: the caller decides
    if done is None:
        return None
    return _transfer_record(kind=TransferRecord.Kind.TRANSFER, record_id=done.record_id,
                            operation_id=done.operation_id, payer=done.accounts[payer_pk],
                            payee=done.accounts[payee_pk], amount=amount, remark=remark, actor=actor, at=at)


@idempotent("transfer", TransferRecord, stores_key_itself=True)
def _transfer_create(*, actor, payer, payee, amount, remark, idempotency=None) -> TransferRecord:
    """The Python path of ``transfer_create`` (R-TR-1 to R-TR-3, R-TR-7, R-AL-3), in one transaction.

    The rules below are also those of ``eac_transfer_create`` (accounts/sql/): a change of one of them is a
    change of that function too (a new ``_vN.sql`` and migration). tests/accounts/test_transfer_function.py
    fails when the function accepts what this refuses, or leaves a plain transfer to this path.
    """
    amount, remark, enterprise_id, payer_pk, payee_pk = _money_request(
        actor=actor, first=payer, second=payee, amount=amount, remark=remark, second_field="payee")
    at = timezone.now()
    payer, payee, state = _lock_two_accounts(payer_pk, payee_pk, overdue_of=payer_pk,
                                             key=idempotency.key if idempotency else None)
    if state.key is not None:
        idempotency.replay(*state.key)
    _check_fund_account(payer, enterprise_id)
    _check_fund_account(payee, enterprise_id)
    if state.overdue > 0:
        raise DomainError(MSG_PAYER_OVERDUE.format(account=payer.account_id, overdue=M(state.overdue)),
                          field="payer", rule="R-TR-2")
    limit = selectors.transferable_amount(payer)
    if amount > limit:
        raise DomainError(MSG_OVER_TRANSFERABLE.format(limit=M(limit), amount=M(amount)), field="amount",
                          rule="R-TR-2", code="over_transferable")
    before = {"payer": _figures(payer), "payee": _figures(payee)}
    record = _write_transfer_record(
        kind=TransferRecord.Kind.TRANSFER, payer=payer, payee=payee, amount=amount, remark=remark, actor=actor,
        at=at, audit_before=before, audit_after={"payer": payer, "payee": payee}, idempotency=idempotency,
        pair_change=lambda batch: fastsql.add_pair_transfer(batch, source_id=payer_pk, target_id=payee_pk,
                                                            amount=amount))
    _evaluate_alerts([payer, payee], at=at)
    return record


@idempotent("withdrawal", TransferRecord, stores_key_itself=True)
def withdrawal_create(*, actor, source, target, amount, remark, idempotency=None) -> TransferRecord:
    """Withdraw ``amount`` that ``source`` (A) transferred to ``target`` (B) back to A's own cash (R-TR-5)."""
    amount, remark, enterprise_id, source_pk, target_pk = _money_request(
        actor=actor, first=source, second=target, amount=amount, remark=remark, second_field="target")
    at = timezone.now()
    source, target, state = _lock_two_accounts(source_pk, target_pk, pair=(source_pk, target_pk),
                                               key=idempotency.key if idempotency else None)
    if state.key is not None:
        idempotency.replay(*state.key)
    _check_fund_account(source, enterprise_id)
    _check_fund_account(target, enterprise_id)
    pair = state.pair
    if pair is None:
        raise DomainError(MSG_NO_TRANSFER.format(source=source.account_id, target=target.account_id),
                          field="source", rule="R-TR-4")
    limit = selectors.withdrawable_amount(source=source, target=target, pair=pair)
    if amount > limit:
        raise DomainError(MSG_OVER_WITHDRAWABLE.format(limit=M(limit), amount=M(amount)), field="amount",
                          rule="R-TR-4", code="over_withdrawable")
    before = {"source": _figures(source), "target": _figures(target)}
    record = _write_transfer_record(
        kind=TransferRecord.Kind.WITHDRAWAL, payer=target, payee=source, amount=amount, remark=remark, actor=actor,
        at=at, audit_before=before, audit_after={"source": source, "target": target}, idempotency=idempotency,
        pair_change=lambda batch: fastsql.add_pair_withdrawal(batch, pair=pair, amount=amount))
    _evaluate_alerts([source, target], at=at)
    return record


def _pk(value) -> int:
    if isinstance(value, Account):
        return value.pk
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DomainError("Choose an account.")


# ---------------------------------------------------------------------------------------------
# Credit control (R-CR-1 to R-CR-7)
# ---------------------------------------------------------------------------------------------

def _next_contract_number(enterprise: Enterprise, at) -> str:
    return f"CC{at:%Y%m%d}{enterprise.pk:06d}"


@atomic_service
def credit_contract_grant(*, actor, enterprise: Enterprise, total_credit_limit, reason: str = "") -> CreditContract:
    """The account manager grants or changes the enterprise's total credit limit (R-CR-1, R-CR-2).

    The first contract is pending until the management account confirms it; while pending, a new grant
    changes its amount. Once effective, a change takes effect at once and notifies the management
    account's contacts by SMS and email.
    """
    require_account_manager(actor)
    total = parse_amount(total_credit_limit, field="total_credit_limit", allow_zero=True)
    at = timezone.now()
    enterprise = _lock_enterprise(enterprise.pk)
    contract = CreditContract.objects.select_for_update().filter(enterprise=enterprise).first()
    management = Account.objects.filter(enterprise=enterprise, is_management=True).first()
    if contract is None:
        contract = CreditContract.objects.create(
            enterprise=enterprise, contract_number=_next_contract_number(enterprise, at), total_credit_limit=total,
            created_by=_user(actor), created_at=at, updated_at=at)
        audit_event(actor=actor, action="credit_contract_grant", obj=contract, enterprise=enterprise,
                    after={"total_credit_limit": total, "status": contract.status}, at=at)
        if management is not None:
            notify_account(management, kind="credit_contract_pending", console=True, at=at, email=False,
                           subject="Credit control contract to confirm",
                           body=(f"A credit control contract of {M(total, currency=True)} awaits your confirmation "
                                 f"on the Contracts page."))
        return contract
    old = contract.total_credit_limit
    if old == total:
        raise DomainError(f"The total credit limit is already {M(total)}.", field="total_credit_limit")
    contract.total_credit_limit = total
    contract.updated_at = at
    contract.save(update_fields=["total_credit_limit", "updated_at"])
    audit_event(actor=actor, action="credit_contract_change", obj=contract, enterprise=enterprise,
                before={"total_credit_limit": old}, after={"total_credit_limit": total}, at=at)
    if contract.status == CreditContract.Status.EFFECTIVE:
        CreditChangeRecord.objects.create(enterprise=enterprise, account=None, old_value=old, new_value=total,
                                          reason=reason[:200] or "Total credit limit changed",
                                          actor=_user(actor), created_at=at)
        if management is not None:
            notify_account(management, kind="credit_total_changed", console=True, at=at,
                           subject="Total credit limit changed",
                           body=f"The enterprise's total credit limit changed from {M(old)} to {M(total)}.")
    return contract


@atomic_service
def credit_contract_confirm(*, actor, contract: CreditContract) -> CreditContract:
    """The management account confirms the first contract; it takes effect at once (R-CR-1)."""
    contract = CreditContract.objects.select_for_update().select_related("enterprise").get(pk=contract.pk)
    require_enterprise_admin(actor, contract.enterprise_id)
    if contract.status != CreditContract.Status.PENDING:
        raise DomainError(MSG_CONTRACT_NOT_PENDING)
    at = timezone.now()
    contract.status = CreditContract.Status.EFFECTIVE
    contract.confirmed_at = at
    contract.confirmed_by = actor
    contract.updated_at = at
    contract.save(update_fields=["status", "confirmed_at", "confirmed_by", "updated_at"])
    CreditChangeRecord.objects.create(enterprise=contract.enterprise, account=None, old_value=ZERO,
                                      new_value=contract.total_credit_limit, reason="Credit control contract confirmed",
                                      actor=actor, created_at=at)
    audit_event(actor=actor, action="credit_contract_confirm", obj=contract, enterprise=contract.enterprise,
                before={"status": "pending"}, after={"status": "effective"}, at=at)
    notify_account(actor.account, kind="credit_contract_confirmed", email=False, at=at,
                   subject="Credit control contract effective",
                   body=(f"Your credit control contract {contract.contract_number} of "
                         f"{M(contract.total_credit_limit, currency=True)} is now effective."))
    return contract


def credit_blocker(account: Account) -> DomainError | None:
    """Why the credit limit of ``account`` cannot be set at all now, or ``None`` (R-CR-1, R-CR-6, R-ORG-5)."""
    contract = selectors.credit_contract(account.enterprise) if account.enterprise_id else None
    if contract is None:
        return DomainError(MSG_NO_CONTRACT, rule="R-CR-1", code="no_contract")
    if contract.status != CreditContract.Status.EFFECTIVE:
        return DomainError(MSG_CONTRACT_PENDING, rule="R-CR-1", code="contract_pending")
    try:
        _check_fund_account(account, account.enterprise_id)
    except DomainError as exc:
        return exc
    return None


@idempotent("credit_limit", CreditChangeRecord)
def credit_limit_set(*, actor, account, new_limit, reason: str = "") -> CreditChangeRecord:
    """Set an account's credit limit within the enterprise's maximum quota allocable (R-CR-3 to R-CR-7)."""
    account_pk = _pk(account)
    new_limit = parse_amount(new_limit, field="new_limit", allow_zero=True)
    at = timezone.now()
    enterprise_id = require_enterprise_admin(actor)
    _lock_enterprise(enterprise_id)  # serializes allocations against the enterprise total (R-CR-3)
    account = _lock_accounts(account_pk)[account_pk]
    if account.enterprise_id != enterprise_id:
        raise DomainError(MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), rule="R-CR-3")
    blocker = credit_blocker(account)
    if blocker is not None:
        raise blocker
    current = account.credit_limit
    if new_limit == current:
        raise DomainError(MSG_LIMIT_UNCHANGED.format(current=M(current)), field="new_limit")
    if new_limit > current:
        allocable = selectors.maximum_quota_allocable(account.enterprise)
        if new_limit - current > allocable:
            raise DomainError(
                MSG_OVER_ALLOCABLE.format(allocable=M(allocable), amount=M(new_limit),
                                          highest=M(selectors.highest_credit_limit(account, allocable))),
                field="new_limit", rule="R-CR-4", code="over_allocable")
    elif account.cash_balance + new_limit - account.outstanding_balance <= 0:
        raise DomainError(
            MSG_DECREASE_TOO_LOW.format(lowest=M(selectors.lowest_credit_limit(account)), amount=M(new_limit),
                                        cash=M(account.cash_balance), outstanding=M(account.outstanding_balance)),
            field="new_limit", rule="R-CR-5", code="decrease_too_low")
    operation = Operation.objects.create(kind=Operation.Kind.CREDIT_LIMIT, actor=actor,
                                         description=(reason or "Credit limit changed")[:200], created_at=at)
    _post(operation, [(account, "credit_limit", new_limit - current)], at=at)
    record = CreditChangeRecord.objects.create(enterprise=account.enterprise, account=account, old_value=current,
                                               new_value=new_limit, reason=(reason or "")[:200], actor=actor,
                                               operation=operation, created_at=at)
    audit_event(actor=actor, action="credit_limit_set", obj=account, enterprise=account.enterprise,
                before={"credit_limit": current}, after={"credit_limit": new_limit}, at=at)
    notify_account(account, kind="credit_limit_changed", email=False, at=at,
                   subject="Credit limit changed",
                   body=f"The credit limit of account {account.account_id} changed from {M(current)} to {M(new_limit)}.")
    _evaluate_alerts([account], at=at)
    return record


# ---------------------------------------------------------------------------------------------
# Back office flags (R-CR-6, R-ORG-1)
# ---------------------------------------------------------------------------------------------

@atomic_service
def account_flags_set(*, actor, account: Account, pay_on_behalf: bool | None = None, risk_flag: bool | None = None,
                      verified_company_id: str | None = None) -> Account:
    require_account_manager(actor)
    account = _lock_accounts(account)[account.pk]
    before = {"pay_on_behalf": account.pay_on_behalf, "risk_flag": account.risk_flag,
              "verified_company_id": account.verified_company_id}
    if pay_on_behalf is not None:
        account.pay_on_behalf = pay_on_behalf
    if risk_flag is not None:
        account.risk_flag = risk_flag
    if verified_company_id is not None:
        account.verified_company_id = verified_company_id.strip()
    account.save(update_fields=["pay_on_behalf", "risk_flag", "verified_company_id"])
    if account.verified_company_id != before["verified_company_id"]:
        company_changed.send(sender=Account, account=account, old_company_id=before["verified_company_id"],
                             at=timezone.now())
    audit_event(actor=actor, action="account_flags_set", obj=account, enterprise=account.enterprise, before=before,
                after={"pay_on_behalf": account.pay_on_behalf, "risk_flag": account.risk_flag,
                       "verified_company_id": account.verified_company_id})
    return account


ACCOUNT_DETAIL_FIELDS = ("name", "contact_phone", "contact_email")


@atomic_service
def account_details_set(*, actor, account: Account, **details) -> Account:
    """The back office changes an account's name or contacts (never its balances), audited (R-AU-1)."""
    require_account_manager(actor)
    unknown = set(details) - set(ACCOUNT_DETAIL_FIELDS)
    if unknown:
        raise DomainError(f"These account fields cannot be changed here: {', '.join(sorted(unknown))}.")
    account = _lock_accounts(account)[_pk(account)]
    before = {f: getattr(account, f) for f in details}
    for field, value in details.items():
        setattr(account, field, (value or "").strip())
    if not account.name:
        raise DomainError("Enter the account's name.", field="name")
    account.save(update_fields=sorted(details))
    audit_event(actor=actor, action="account_details_set", obj=account, enterprise=account.enterprise,
                before=before, after={f: getattr(account, f) for f in details})
    return account


# ---------------------------------------------------------------------------------------------
# Low balance alerts (R-AL-1 to R-AL-5)
# ---------------------------------------------------------------------------------------------

def _parse_threshold(threshold) -> Decimal:
    return parse_amount(threshold, field="threshold", allow_zero=True)


@atomic_service
def alert_set(*, actor, account, enabled: bool, threshold) -> Account:
    """Set one account's alert switch and threshold; starts afresh (R-AL-1, R-AL-3)."""
    return alert_set_many(actor=actor, accounts=[account], enabled=enabled, threshold=threshold)[0]


@atomic_service
def alert_set_many(*, actor, accounts, enabled: bool, threshold) -> list[Account]:
    """Apply one threshold and switch to every selected account, all or none (R-AL-2)."""
    threshold = _parse_threshold(threshold)
    pks = [_pk(a) for a in accounts]
    if not pks:
        raise DomainError(MSG_NO_ACCOUNTS, field="accounts", rule="R-AL-2")
    enterprise_id = require_enterprise_admin(actor)
    locked = _lock_accounts(*pks)
    at = timezone.now()
    for account in locked.values():
        if account.enterprise_id != enterprise_id:
            raise DomainError(MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), field="accounts")
    for account in locked.values():
        before = {"alert_enabled": account.alert_enabled, "alert_threshold": account.alert_threshold}
        account.alert_enabled = bool(enabled)
        account.alert_threshold = threshold
        account.alert_sent_at = None
        account.alert_reminders_sent = 0
        account.alert_last_reminder_on = None
        account.save(update_fields=["alert_enabled", "alert_threshold", "alert_sent_at", "alert_reminders_sent",
                                    "alert_last_reminder_on"])
        audit_event(actor=actor, action="alert_set", obj=account, enterprise=account.enterprise, before=before,
                    after={"alert_enabled": account.alert_enabled, "alert_threshold": threshold}, at=at)
    return [locked[pk] for pk in pks]


def send_alert_reminders(*, now=None) -> int:
    """Send the daily reminders due now (R-AL-5). Safe to run more than once a day. Returns how many went out."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    candidates = list(Account.objects.filter(
        alert_enabled=True, alert_sent_at__isnull=False,
        alert_reminders_sent__lt=settings.EAC_ALERT_REMINDER_DAYS,
    ).exclude(alert_last_reminder_on__gte=today).values_list("pk", flat=True))
    sent = 0
    for pk in candidates:
        sent += _send_one_reminder(pk, now=now, today=today)
    return sent


@atomic_service
def _send_one_reminder(pk, *, now, today) -> int:
    account = _lock_accounts(pk)[pk]
    if (not account.alert_enabled or account.alert_sent_at is None
            or account.alert_reminders_sent >= settings.EAC_ALERT_REMINDER_DAYS
            or (account.alert_last_reminder_on is not None and account.alert_last_reminder_on >= today)):
        return 0
    available = account.available_credit
    if available >= account.alert_threshold:
        return 0  # back at or above the threshold: the next balance change ends the episode (R-AL-3)
    if selectors.is_overdue(account, on=today):
        # Reminders stop for good once the account is overdue, even if a later payment clears the overdue
        # amount while it stays below the threshold; a new episode starts only after it recovers (R-AL-5).
        account.alert_reminders_sent = settings.EAC_ALERT_REMINDER_DAYS
        account.save(update_fields=["alert_reminders_sent"])
        return 0
    account.alert_reminders_sent += 1
    account.alert_last_reminder_on = today
    account.save(update_fields=["alert_reminders_sent", "alert_last_reminder_on"])
    AlertEvent.objects.create(account=account, kind=AlertEvent.Kind.REMINDER, available_credit=available,
                              threshold=account.alert_threshold, created_at=now)
    notify_account(account, kind="low_balance_reminder", console=True, at=now,
                   subject=f"Reminder: low balance on {account.name}",
                   body=(f"The available credit of account {account.account_id} is still {M(available, currency=True)}, "
                         f"below your alert threshold of {M(account.alert_threshold, currency=True)}."))
    return 1


# ---------------------------------------------------------------------------------------------
# Enterprise and resource directory (R-ORG-2 to R-ORG-4)
# ---------------------------------------------------------------------------------------------

@atomic_service
def enterprise_enable(*, actor, management_account: Account, name: str) -> Enterprise:
    """The management account enables the Enterprise Account Center for its verified company (R-ORG-2)."""
    account = _lock_accounts(management_account)[management_account.pk]
    if not account.verified_company_id:
        raise DomainError("Only an account that passed real-name verification as a company can enable the "
                          "Enterprise Account Center (R-ORG-1).")
    if account.enterprise_id is not None:
        raise DomainError(MSG_ALREADY_MEMBER.format(account=account.account_id))
    enterprise = Enterprise.objects.create(name=name.strip()[:120] or account.name,
                                           company_id=account.verified_company_id, eac_enabled=True)
    root = Folder.objects.create(enterprise=enterprise, parent=None, name="Root", depth=0)
    root.path = f"/{root.pk}/"
    root.save(update_fields=["path"])
    account.enterprise = enterprise
    account.folder = root
    account.is_management = True
    account.save(update_fields=["enterprise", "folder", "is_management"])
    audit_event(actor=actor, action="enterprise_enable", obj=enterprise, enterprise=enterprise,
                after={"management_account": account.account_id})
    membership_changed.send(sender=Account, account=account, old_enterprise_id=None, old_folder=None,
                            new_folder=root, at=timezone.now())
    return enterprise


def _clean_folder_name(name) -> str:
    name = (name or "").strip()
    if not (1 <= len(name) <= 24):
        raise DomainError(MSG_FOLDER_NAME, field="name", rule="R-ORG-3")
    return name


@atomic_service
def folder_create(*, actor, parent: Folder, name: str) -> Folder:
    require_enterprise_admin(actor, parent.enterprise_id)
    name = _clean_folder_name(name)
    parent = Folder.objects.select_for_update(no_key=True).get(pk=parent.pk)
    if parent.depth + 1 > Folder.MAX_DEPTH:
        raise DomainError(MSG_FOLDER_DEPTH, field="parent", rule="R-ORG-3")
    if Folder.objects.filter(parent=parent, name=name).exists():
        raise DomainError(MSG_FOLDER_NAME_TAKEN.format(name=name), field="name", rule="R-ORG-3")
    folder = Folder.objects.create(enterprise_id=parent.enterprise_id, parent=parent, name=name,
                                   depth=parent.depth + 1)
    folder.path = f"{parent.path}{folder.pk}/"
    folder.save(update_fields=["path"])
    audit_event(actor=actor, action="folder_create", obj=folder, enterprise=parent.enterprise,
                after={"name": name, "parent": parent.name})
    return folder


@atomic_service
def folder_rename(*, actor, folder: Folder, name: str) -> Folder:
    folder = Folder.objects.select_for_update(no_key=True).get(pk=folder.pk)
    require_enterprise_admin(actor, folder.enterprise_id)
    if folder.parent_id is None:
        raise DomainError(MSG_FOLDER_ROOT)
    name = _clean_folder_name(name)
    if Folder.objects.filter(parent_id=folder.parent_id, name=name).exclude(pk=folder.pk).exists():
        raise DomainError(MSG_FOLDER_NAME_TAKEN.format(name=name), field="name", rule="R-ORG-3")
    old = folder.name
    folder.name = name
    folder.save(update_fields=["name"])
    audit_event(actor=actor, action="folder_rename", obj=folder, enterprise=folder.enterprise,
                before={"name": old}, after={"name": name})
    return folder


@atomic_service
def folder_delete(*, actor, folder: Folder) -> None:
    folder = Folder.objects.select_for_update().get(pk=folder.pk)
    require_enterprise_admin(actor, folder.enterprise_id)
    if folder.parent_id is None:
        raise DomainError(MSG_FOLDER_ROOT)
    children = Folder.objects.filter(parent=folder).count()
    accounts = Account.objects.filter(folder=folder).count()
    open_invitations = Invitation.objects.filter(folder=folder, status=Invitation.Status.INVITED).count()
    if children or accounts or open_invitations:
        raise DomainError(MSG_FOLDER_NOT_EMPTY.format(name=folder.name, folders=children,
                                                      accounts=accounts + open_invitations), rule="R-ORG-4")
    audit_event(actor=actor, action="folder_delete", obj=folder, enterprise=folder.enterprise,
                before={"name": folder.name})
    folder.delete()


@atomic_service
def accounts_move(*, actor, accounts, folder: Folder) -> list[Account]:
    """Move one or many accounts into ``folder``; folder-scoped shares follow at once (R-ORG-4, R-SH-2)."""
    require_enterprise_admin(actor, folder.enterprise_id)
    pks = [_pk(a) for a in accounts]
    if not pks:
        raise DomainError(MSG_NO_ACCOUNTS, field="accounts")
    lock_directory(folder.enterprise_id)
    locked = _lock_accounts(*pks)
    at = timezone.now()
    for account in locked.values():
        if account.enterprise_id != folder.enterprise_id:
            raise DomainError(MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), field="accounts")
    moved = []
    for account in locked.values():
        if account.folder_id == folder.pk:
            continue
        old_folder = account.folder
        account.folder = folder
        account.save(update_fields=["folder"])
        audit_event(actor=actor, action="account_move", obj=account, enterprise=folder.enterprise,
                    before={"folder": old_folder.name if old_folder else None}, after={"folder": folder.name}, at=at)
        membership_changed.send(sender=Account, account=account, old_enterprise_id=account.enterprise_id,
                                old_folder=old_folder, new_folder=folder, at=at)
        moved.append(account)
    return moved


def _expire_invitations(*, now) -> int:
    return Invitation.objects.filter(status=Invitation.Status.INVITED, expires_at__lte=now).update(
        status=Invitation.Status.EXPIRED, responded_at=now)


@atomic_service
def expire_invitations(*, now=None) -> int:
    """Mark the open invitations older than 14 days expired (R-ORG-4); returns how many."""
    return _expire_invitations(now=now or timezone.now())


@atomic_service
def invitation_create(*, actor, enterprise: Enterprise, account_id: str, folder: Folder | None = None) -> Invitation:
    """The management account invites an account by its ID; the invitation expires after 14 days (R-ORG-4)."""
    require_enterprise_admin(actor, enterprise.pk)
    now = timezone.now()
    _expire_invitations(now=now)
    account_id = (account_id or "").strip()
    account = Account.objects.filter(account_id=account_id).first()
    if account is None:
        raise DomainError(MSG_UNKNOWN_ACCOUNT.format(account_id=account_id[:32]), field="account_id")
    account = _lock_accounts(account)[account.pk]
    if account.enterprise_id is not None:
        raise DomainError(MSG_ALREADY_MEMBER.format(account=account.account_id), field="account_id")
    if Invitation.objects.filter(enterprise=enterprise, account=account, status=Invitation.Status.INVITED).exists():
        raise DomainError(MSG_ALREADY_INVITED.format(account=account.account_id), field="account_id")
    folder = folder or selectors.root_folder(enterprise)
    if folder.enterprise_id != enterprise.pk:
        raise DomainError("Choose a folder of this enterprise.", field="folder")
    invitation = Invitation.objects.create(
        enterprise=enterprise, account=account, folder=folder, invited_by=actor, created_at=now,
        expires_at=now + timedelta(days=settings.EAC_INVITATION_DAYS))
    audit_event(actor=actor, action="invitation_create", obj=invitation, enterprise=enterprise,
                after={"account": account.account_id, "folder": folder.name}, at=now)
    notify_account(account, kind="invitation", console=True, at=now, subject=f"Invitation from {enterprise.name}",
                   body=f"{enterprise.name} invites your account to join its resource directory.")
    return invitation


def invitation_respond(*, actor, invitation: Invitation, accept: bool) -> Invitation:
    """A user of the invited account accepts or declines (R-ORG-4).

    An invitation past its 14 days is marked expired first, in its own transaction, so that the
    refusal that follows does not roll the expiry back.
    """
    expire_invitations()
    return _invitation_respond(actor=actor, invitation=invitation, accept=accept)


@atomic_service
def _invitation_respond(*, actor, invitation: Invitation, accept: bool) -> Invitation:
    now = timezone.now()
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if actor is None or getattr(actor, "account_id", None) != invitation.account_id:
        raise PermissionDenied("Only a user of the invited account can answer this invitation.")
    if invitation.status == Invitation.Status.INVITED and invitation.expires_at <= now:
        raise DomainError(MSG_INVITATION_CLOSED.format(status="expired"))  # expired a moment ago
    if invitation.status != Invitation.Status.INVITED:
        raise DomainError(MSG_INVITATION_CLOSED.format(status=invitation.get_status_display().lower()))
    if accept:
        lock_directory(invitation.enterprise_id)
    account = _lock_accounts(invitation.account_id)[invitation.account_id]
    if accept:
        if account.enterprise_id is not None:
            raise DomainError(MSG_ALREADY_MEMBER.format(account=account.account_id))
        account.enterprise_id = invitation.enterprise_id
        account.folder_id = invitation.folder_id
        account.save(update_fields=["enterprise", "folder"])
        invitation.status = Invitation.Status.ACCEPTED
        membership_changed.send(sender=Account, account=account, old_enterprise_id=None, old_folder=None,
                                new_folder=invitation.folder, at=now)
    else:
        invitation.status = Invitation.Status.DECLINED
    invitation.responded_at = now
    invitation.save(update_fields=["status", "responded_at"])
    audit_event(actor=actor, action="invitation_accept" if accept else "invitation_decline", obj=invitation,
                enterprise=invitation.enterprise, after={"status": invitation.status}, at=now)
    return invitation


@atomic_service
def account_remove(*, actor, account: Account) -> Account:
    """Remove an account from the directory; it loses folder-scoped shares at once (R-ORG-4, R-SH-2).

    Refused while the account has a credit limit (allocated from the enterprise's credit) or a transfer book
    balance: money transferred to it could no longer be withdrawn by its source once it left (R-TR-1, R-TR-4).
    """
    enterprise_id = require_enterprise_admin(actor)
    lock_directory(enterprise_id)
    account = _lock_accounts(account)[account.pk]
    if account.enterprise_id != enterprise_id:  # another enterprise's, or in no directory at all
        raise PermissionDenied(MSG_NOT_ADMIN)
    if account.is_management:
        raise DomainError(MSG_REMOVE_MANAGEMENT)
    if account.credit_limit > 0:
        raise DomainError(MSG_REMOVE_CREDIT.format(account=account.account_id, limit=M(account.credit_limit)))
    if account.transfer_book_balance > 0:
        raise DomainError(MSG_REMOVE_TRANSFER_BOOK.format(account=account.account_id,
                                                          amount=M(account.transfer_book_balance)))
    now = timezone.now()
    old_folder, old_enterprise = account.folder, account.enterprise
    account.enterprise = None
    account.folder = None
    account.alert_enabled = False
    account.save(update_fields=["enterprise", "folder", "alert_enabled"])
    audit_event(actor=actor, action="account_remove", obj=account, enterprise=old_enterprise,
                before={"folder": old_folder.name if old_folder else None}, after={"folder": None}, at=now)
    membership_changed.send(sender=Account, account=account, old_enterprise_id=old_enterprise.pk,
                            old_folder=old_folder, new_folder=None, at=now)
    return account


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
