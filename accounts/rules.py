"""The money rules of SPEC sections 2 to 5, as pure functions: figures in, figures or a refusal out.

Nothing here reads or writes the database. Services call these on locked rows inside their transaction;
previews, the account table and the drawers call the same functions on the figures they show, so a rule has
exactly one home. docs/rules.md states each rule by its id.
"""

from decimal import Decimal
from typing import NamedTuple


class ChargeSplit(NamedTuple):
    """What pays for a charge (R-MON-5): the parts always sum exactly to the charge."""

    from_transfer_book: Decimal
    from_own_cash: Decimal
    billed: Decimal


def split_charge(*, amount: Decimal, transfer_book_balance: Decimal, own_cash: Decimal) -> ChargeSplit:
    """Spending takes the transfer book balance first, then own cash; the rest becomes an unpaid bill (R-MON-5)."""
    from_book = min(transfer_book_balance, amount)
    from_cash = min(own_cash, amount - from_book)
    return ChargeSplit(from_book, from_cash, amount - from_book - from_cash)
