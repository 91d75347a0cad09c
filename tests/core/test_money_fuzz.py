"""Fuzzing of money input and arithmetic (R-MON-1) with Hypothesis.

``parse_amount`` either returns a ``Decimal`` with exactly two places in (0, 999,999,999,999.99] or
raises ``DomainError`` whose message names R-MON-1: never another exception, whatever a person types.
``round_money`` rounds half up to the cent; ``split_exact`` parts sum exactly to the whole and each is
less than a cent from its exact proportional share.

``HYPOTHESIS_PROFILE=long`` runs many more examples.
"""

import os
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.errors import DomainError
from core.money import parse_amount, round_money, split_exact

MAX = Decimal("999999999999.99")
MAX_CENTS = int(MAX * 100)
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
FUZZ = settings(max_examples=5000 if LONG else 400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NASTY = [
    "", " ", "\t\n", "-", "+", ".", ",", "0", "0.00", "-0", "-1", "-0.01", "+1", "1.", ".5", "1..2", "1.2.3",
    "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "1e3", "1E3", "1e-2", "0x10", "1_000",
    "1 000", "1'000", "1,00", "12,34.00", ",123", "123,", "1,,234", "1234,567", "1,234,56", "1.234,56",
    "999999999999.995", "1000000000000", "1000000000000.00", "99999999999999999999999999999999",
    "<script>alert(1)</script>", "1<b>2</b>", "&#49;", "1; DROP TABLE accounts_account; --", "' OR '1'='1",
    "1 OR 1=1", "%00", "1\x00", "\u00a0100", "100\u200b", "١٢٣", "１２３", "१२३", "¹²³", "Ⅻ", "½", "1e400",
    "9" * 10_000, "1." + "0" * 5000, "0." + "0" * 5000 + "1",
]
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")

cents = st.integers(1, MAX_CENTS)


def plain(c: int) -> str:
    return f"{Decimal(c) / 100:.2f}"


def grouped(c: int) -> str:
    return f"{Decimal(c) / 100:,.2f}"


def check_outcome(raw, *, allow_zero=False):
    """The one property: a two-place Decimal in range, or a DomainError naming R-MON-1. Returns the value or None."""
    try:
        value = parse_amount(raw, allow_zero=allow_zero)
    except DomainError as exc:
        assert "R-MON-1" in exc.message, exc.message
        assert exc.rule == "R-MON-1"
        return None
    assert isinstance(value, Decimal)
    assert value.is_finite() and value.as_tuple().exponent == -2
    assert (Decimal("0.00") if allow_zero else Decimal("0.01")) <= value <= MAX
    return value


anything = st.one_of(
    st.sampled_from(NASTY),
    st.text(),
    st.text(alphabet="0123456789,.-+eE _"),
    st.text(alphabet="0123456789.,", min_size=1, max_size=25),
    st.from_regex(r"-?[0-9]{0,16}(,[0-9]{1,4}){0,4}(\.[0-9]{0,5})?", fullmatch=True),
    cents.map(plain).map(lambda s: s.translate(ARABIC_INDIC)),
    cents.map(plain).map(lambda s: s.translate(FULL_WIDTH)),
    cents.map(grouped).map(lambda s: s.translate(DEVANAGARI)),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
    st.none(),
    st.booleans(),
)


@FUZZ
@given(raw=anything, allow_zero=st.booleans())
@example(raw="1e3", allow_zero=False)
@example(raw=Decimal("NaN"), allow_zero=True)
@example(raw=float("inf"), allow_zero=False)
def test_parse_amount_returns_two_place_decimal_or_refuses_naming_R_MON_1(raw, allow_zero):
    check_outcome(raw, allow_zero=allow_zero)


@FUZZ
@given(c=cents, style=st.sampled_from(["plain", "grouped", "short", "padded"]))
def test_typed_valid_amounts_are_accepted_to_the_cent_R_MON_1(c, style):
    text = {"plain": plain(c), "grouped": grouped(c), "padded": f"  {plain(c)}\t",
            "short": plain(c).rstrip("0").rstrip(".")}[style]
    assert check_outcome(text) == Decimal(c) / 100


@FUZZ
@given(c=cents, kind=st.sampled_from(["negative", "third_decimal", "too_big", "exponent", "arabic", "full_width",
                                      "devanagari", "bad_group", "html", "sql"]))
def test_typed_invalid_amounts_are_refused_naming_R_MON_1(c, kind):
    text = {
        "negative": "-" + plain(c),
        "third_decimal": plain(c) + str(1 + c % 9),
        "too_big": plain(MAX_CENTS + c),
        "exponent": f"{Decimal(c)}e-2",
        "arabic": plain(c).translate(ARABIC_INDIC),
        "full_width": plain(c).translate(FULL_WIDTH),
        "devanagari": plain(c).translate(DEVANAGARI),
        "bad_group": f"{c},{c % 100:02d}.00",  # a thousands separator before a group of 2 digits
        "html": f"<b>{plain(c)}</b>",
        "sql": f"{plain(c)}; DROP TABLE accounts_account",
    }[kind]
    for allow_zero in (False, True):
        assert check_outcome(text, allow_zero=allow_zero) is None, text


@FUZZ
@given(allow_zero=st.booleans(), text=st.sampled_from(["0", "0.00", "0.0", "000"]))
def test_zero_only_where_zero_is_allowed_R_MON_1(allow_zero, text):
    assert check_outcome(text, allow_zero=allow_zero) == (Decimal("0.00") if allow_zero else None)


def half_up_oracle(value: Decimal) -> Decimal:
    """Round to the cent, ties away from zero, computed with exact fractions."""
    exact = Fraction(value) * 100
    sign = -1 if exact < 0 else 1
    n = int(abs(exact) + Fraction(1, 2))  # floor(|x| + 1/2)
    return Decimal(sign * n) / 100


@FUZZ
@given(value=st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=6, allow_nan=False,
                         allow_infinity=False))
@example(value=Decimal("0.005"))
@example(value=Decimal("-0.005"))
@example(value=Decimal("2.675"))
@example(value=Decimal("1.004999"))
def test_round_money_is_half_up_to_the_cent_R_MON_1(value):
    rounded = round_money(value)
    assert rounded.as_tuple().exponent == -2
    assert rounded == half_up_oracle(value)
    assert abs(rounded - value) <= Decimal("0.005")


weights = st.decimals(min_value=Decimal("0"), max_value=Decimal("1e9"), places=4, allow_nan=False,
                      allow_infinity=False)


@FUZZ
@given(total_cents=st.one_of(st.integers(0, 1000), st.integers(0, MAX_CENTS)),
       parts=st.lists(weights, min_size=1, max_size=30))
@example(total_cents=100, parts=[Decimal(1), Decimal(1), Decimal(1)])
@example(total_cents=1, parts=[Decimal(0), Decimal(0)])
@example(total_cents=MAX_CENTS, parts=[Decimal("0.0001"), Decimal("1e9"), Decimal("3")])
def test_split_parts_sum_exactly_and_stay_within_a_cent_of_the_share_R_MON_1(total_cents, parts):
    total = Decimal(total_cents) / 100
    result = split_exact(total, parts)
    assert len(result) == len(parts)
    assert sum(result, Decimal(0)) == total
    weight_sum = sum((Fraction(w) for w in parts), Fraction(0))
    for part, weight in zip(result, parts):
        assert part.as_tuple().exponent == -2 and part >= 0
        share = Fraction(total) * (Fraction(weight) / weight_sum if weight_sum else Fraction(1, len(parts)))
        assert abs(Fraction(part) - share) < Fraction(1, 100), (part, float(share))
