"""Transfers and withdrawals between two accounts (R-TR-1 to R-TR-5, R-TR-7, R-TR-8)."""

import functools
from decimal import Decimal

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from core.audit import audit_json
from core.context import current_ip
from core.db import drop_broken_connection, is_connection_lost, is_retryable
from core.errors import DomainError
from core.idempotency import idempotency_claim, idempotent
from core.models import IDEMPOTENCY_KEY_CONSTRAINT
from core.money import parse_amount

from .. import fastsql, selectors
from .. import messages as msg
from ..models import Account, TransferRecord
from .alerts import evaluate_alerts
from .common import M, account_pk, balance_figures, check_fund_account, clean_remark, require_enterprise_admin

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
    audit_after = {**{side: balance_figures(account) for side, account in audit_after.items()}, "amount": amount}
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
    remark = clean_remark(remark)
    enterprise_id = require_enterprise_admin(actor)
    first_pk, second_pk = account_pk(first), account_pk(second)
    if first_pk == second_pk:
        raise DomainError(msg.MSG_SAME_ACCOUNT, field=second_field, rule="R-TR-1")
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
    check_fund_account(payer, enterprise_id)
    check_fund_account(payee, enterprise_id)
    if state.overdue > 0:
        raise DomainError(msg.MSG_PAYER_OVERDUE.format(account=payer.account_id, overdue=M(state.overdue)),
                          field="payer", rule="R-TR-2")
    limit = selectors.transferable_amount(payer)
    if amount > limit:
        raise DomainError(msg.MSG_OVER_TRANSFERABLE.format(limit=M(limit), amount=M(amount)), field="amount",
                          rule="R-TR-2", code="over_transferable")
    before = {"payer": balance_figures(payer), "payee": balance_figures(payee)}
    record = _write_transfer_record(
        kind=TransferRecord.Kind.TRANSFER, payer=payer, payee=payee, amount=amount, remark=remark, actor=actor,
        at=at, audit_before=before, audit_after={"payer": payer, "payee": payee}, idempotency=idempotency,
        pair_change=lambda batch: fastsql.add_pair_transfer(batch, source_id=payer_pk, target_id=payee_pk,
                                                            amount=amount))
    evaluate_alerts([payer, payee], at=at)
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
    check_fund_account(source, enterprise_id)
    check_fund_account(target, enterprise_id)
    pair = state.pair
    if pair is None:
        raise DomainError(msg.MSG_NO_TRANSFER.format(source=source.account_id, target=target.account_id),
                          field="source", rule="R-TR-4")
    limit = selectors.withdrawable_amount(source=source, target=target, pair=pair)
    if amount > limit:
        raise DomainError(msg.MSG_OVER_WITHDRAWABLE.format(limit=M(limit), amount=M(amount)), field="amount",
                          rule="R-TR-4", code="over_withdrawable")
    before = {"source": balance_figures(source), "target": balance_figures(target)}
    record = _write_transfer_record(
        kind=TransferRecord.Kind.WITHDRAWAL, payer=target, payee=source, amount=amount, remark=remark, actor=actor,
        at=at, audit_before=before, audit_after={"source": source, "target": target}, idempotency=idempotency,
        pair_change=lambda batch: fastsql.add_pair_withdrawal(batch, pair=pair, amount=amount))
    evaluate_alerts([source, target], at=at)
    return record
