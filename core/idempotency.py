"""Idempotency keys (R-TR-7): the first request with a key runs, a repeat gets its first result.

A money form carries a key made when it was shown; a double click or a retried request sends it again. The key
row is written with the result in the service's own transaction, so the operation and its key commit together.
"""

import hashlib
import json

from django.db import IntegrityError
from django.utils import timezone

from core.db import atomic_service
from core.errors import DomainError
from core.models import IdempotencyKey
from core.money import parse_amount

MSG_IDEMPOTENCY_MISMATCH = "This request key was already used for a different operation; reload the form and try again."


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
