"""What both state machines do with every operation: the service must agree with the reference model."""

from collections import Counter

from core.errors import DomainError


def expect(reasons: set, call, what: str, *, seen: Counter, snapshot, reason_of=lambda exc: exc.rule):
    """Run the service ``call``: it must refuse exactly when the model refused (``reasons`` not empty), for one of
    the model's reasons (``reason_of(exc)`` in ``reasons``), and then change nothing (``snapshot()`` the same).
    Counts the outcome in ``seen``; returns the service's result, or the refusal."""
    seen[(what.split("(")[0], tuple(sorted(map(str, reasons))) or "done")] += 1
    if reasons:
        before = snapshot()
        try:
            result = call()
        except DomainError as exc:
            assert reason_of(exc) in reasons, (f"{what}: the service refused with {reason_of(exc)!r} ({exc}); "
                                               f"the model's reasons are {reasons}")
            assert snapshot() == before, f"{what}: refused, but something changed"
            return exc
        raise AssertionError(f"{what}: the model refuses ({reasons}) but the service did it: {result!r}")
    try:
        return call()
    except DomainError as exc:
        raise AssertionError(f"{what}: the model accepts but the service refused: {exc} ({exc.rule})")
