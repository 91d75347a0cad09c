"""Money: ``Decimal`` with two places, end to end (R-MON-1)."""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

from .errors import DomainError

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_AMOUNT = Decimal("999999999999.99")

MSG_AMOUNT_REQUIRED = "Enter an amount (R-MON-1)."
MSG_AMOUNT_FORMAT = "Enter an amount in digits, like 1250.00 or 1,250.00 (R-MON-1)."
MSG_AMOUNT_DECIMALS = "An amount has at most 2 decimal places (R-MON-1)."
MSG_AMOUNT_POSITIVE = "The amount must be greater than 0.00 (R-MON-1)."
MSG_AMOUNT_NEGATIVE = "The amount cannot be negative (R-MON-1)."
MSG_AMOUNT_TOO_LARGE = "The amount cannot exceed 999,999,999,999.99 (R-MON-1)."

# ASCII digits only, optional thousands separators in proper groups, at most 2 decimals checked apart.
_AMOUNT_RE = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?$", re.ASCII)


def parse_amount(raw, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """Parse an amount typed by a person. Refuses anything R-MON-1 does not allow.

    Accepts ``Decimal``/``int`` too (from services called by code), with the same rules.
    """
    if raw is None:
        raise DomainError(MSG_AMOUNT_REQUIRED, field=field, rule="R-MON-1")
    if isinstance(raw, bool) or isinstance(raw, float):
        raise DomainError(MSG_AMOUNT_FORMAT, field=field, rule="R-MON-1")
    if isinstance(raw, (int, Decimal)):
        text = format(Decimal(raw), "f") if not (isinstance(raw, Decimal) and not raw.is_finite()) else "x"
    else:
        text = str(raw).strip()
    if text == "":
        raise DomainError(MSG_AMOUNT_REQUIRED, field=field, rule="R-MON-1")
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    match = _AMOUNT_RE.match(text)
    if not match:
        raise DomainError(MSG_AMOUNT_FORMAT, field=field, rule="R-MON-1")
    decimals = match.group(1) or ""
    if len(decimals.rstrip("0")) > 2:
        raise DomainError(MSG_AMOUNT_DECIMALS, field=field, rule="R-MON-1")
    try:
        value = Decimal(text.replace(",", "")).quantize(CENT)
    except InvalidOperation:  # pragma: no cover - the regex admits only plain decimals
        raise DomainError(MSG_AMOUNT_FORMAT, field=field, rule="R-MON-1")
    if negative and value != 0:
        raise DomainError(MSG_AMOUNT_NEGATIVE, field=field, rule="R-MON-1")
    if value > MAX_AMOUNT:
        raise DomainError(MSG_AMOUNT_TOO_LARGE, field=field, rule="R-MON-1")
    if value == 0 and not allow_zero:
        raise DomainError(MSG_AMOUNT_POSITIVE, field=field, rule="R-MON-1")
    return value


def round_money(value: Decimal) -> Decimal:
    """Round a computed amount to the cent, half up, once, where it is recorded (R-MON-1)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def split_exact(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights`` so that the parts sum exactly to ``total``.

    Largest remainder method on cents (R-MON-1: the recorded parts of a split sum to the whole).
    """
    total = round_money(total)
    if not weights:
        return []
    weight_sum = sum(weights, Decimal(0))
    cents = int(total / CENT)
    if weight_sum == 0:
        raw = [Decimal(cents) / len(weights)] * len(weights)
    else:
        raw = [Decimal(cents) * w / weight_sum for w in weights]
    floors = [int(r) for r in raw]
    rest = cents - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: (raw[i] - floors[i]), reverse=True)
    for i in order[:rest]:
        floors[i] += 1
    return [Decimal(c) * CENT for c in floors]


def format_money(value, *, currency: bool = False) -> str:
    """``1250.5`` -> ``1,250.50`` (``CNY 1,250.50`` with ``currency=True``)."""
    if value is None:
        return "-"
    value = round_money(Decimal(value))
    text = f"{value:,.2f}"
    if currency:
        return f"{settings.EAC_CURRENCY} {text}"
    return text
