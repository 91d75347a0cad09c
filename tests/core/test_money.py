"""R-MON-1: money is Decimal with two places; typed amounts are checked; splits sum exactly."""

from decimal import Decimal

import pytest

from core import money
from core.errors import DomainError
from core.money import format_money, parse_amount, round_money, split_exact

D = Decimal


@pytest.mark.parametrize("raw, expected", [
    ("1250", D("1250.00")),
    ("1250.5", D("1250.50")),
    ("1,250.00", D("1250.00")),
    ("  0.01 ", D("0.01")),
    ("12.300", D("12.30")),  # trailing zeros are not extra decimals
    ("999,999,999,999.99", D("999999999999.99")),
    (D("7.10"), D("7.10")),
    (42, D("42.00")),
])
def test_typed_amount_accepted_R_MON_1(raw, expected):
    value = parse_amount(raw)
    assert value == expected
    assert isinstance(value, Decimal)
    assert value.as_tuple().exponent == -2


@pytest.mark.parametrize("raw, message", [
    (None, money.MSG_AMOUNT_REQUIRED),
    ("", money.MSG_AMOUNT_REQUIRED),
    ("   ", money.MSG_AMOUNT_REQUIRED),
    ("0", money.MSG_AMOUNT_POSITIVE),
    ("0.00", money.MSG_AMOUNT_POSITIVE),
    ("-0.00", money.MSG_AMOUNT_POSITIVE),
    ("-5", money.MSG_AMOUNT_NEGATIVE),
    ("1.001", money.MSG_AMOUNT_DECIMALS),
    ("0.005", money.MSG_AMOUNT_DECIMALS),
    ("1000000000000.00", money.MSG_AMOUNT_TOO_LARGE),  # one cent over 999,999,999,999.99
    ("1,000,000,000,000", money.MSG_AMOUNT_TOO_LARGE),
    ("abc", money.MSG_AMOUNT_FORMAT),
    ("1e3", money.MSG_AMOUNT_FORMAT),
    ("12,34.00", money.MSG_AMOUNT_FORMAT),  # badly grouped separators
    ("1 000", money.MSG_AMOUNT_FORMAT),
    ("١٢٣", money.MSG_AMOUNT_FORMAT),  # non-ASCII digits
    ("NaN", money.MSG_AMOUNT_FORMAT),
    (D("NaN"), money.MSG_AMOUNT_FORMAT),
    (D("Infinity"), money.MSG_AMOUNT_FORMAT),
    (1.5, money.MSG_AMOUNT_FORMAT),  # no float anywhere
    (True, money.MSG_AMOUNT_FORMAT),
])
def test_typed_amount_refused_with_the_rule_it_broke_R_MON_1(raw, message):
    with pytest.raises(DomainError) as info:
        parse_amount(raw, field="amount")
    assert info.value.message == message
    assert info.value.field == "amount"
    assert info.value.rule == "R-MON-1"


def test_zero_allowed_only_when_asked_R_MON_1():
    assert parse_amount("0", allow_zero=True) == D("0.00")
    with pytest.raises(DomainError):
        parse_amount("-0.01", allow_zero=True)


def test_computed_amount_rounded_half_up_to_the_cent_R_MON_1():
    assert round_money(D("0.005")) == D("0.01")
    assert round_money(D("0.025")) == D("0.03")  # half up, not half even (which gives 0.02)
    assert round_money(D("2.674999")) == D("2.67")
    assert round_money(D("-0.005")) == D("-0.01")


@pytest.mark.parametrize("total, weights, expected", [
    (D("100.00"), [D(1), D(1), D(1)], [D("33.34"), D("33.33"), D("33.33")]),
    (D("0.05"), [D(1), D(1)], [D("0.03"), D("0.02")]),
    (D("10.00"), [D(1), D(3)], [D("2.50"), D("7.50")]),
    (D("1.00"), [D(0), D(0)], [D("0.50"), D("0.50")]),
    (D("0.01"), [D(2), D(1), D(1)], [D("0.01"), D("0.00"), D("0.00")]),
])
def test_split_parts_sum_exactly_to_the_whole_R_MON_1(total, weights, expected):
    parts = split_exact(total, weights)
    assert parts == expected
    assert sum(parts) == total


def test_split_of_many_awkward_parts_sums_exactly_R_MON_1():
    weights = [D(w) for w in (3, 7, 11, 13, 17, 19, 23)]
    parts = split_exact(D("1234.57"), weights)
    assert sum(parts) == D("1234.57")
    assert all(p.as_tuple().exponent == -2 for p in parts)


def test_format_money_uses_thousands_separators_and_currency_R_MON_1(settings):
    settings.EAC_CURRENCY = "CNY"
    assert format_money(D("1250.5")) == "1,250.50"
    assert format_money(D("-2500")) == "-2,500.00"
    assert format_money(D("1234567.891"), currency=True) == "CNY 1,234,567.89"
    assert format_money(None) == "-"
