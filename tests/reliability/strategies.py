"""Hypothesis strategies of bad input for the fuzz tests (issue 5, Reliability 4)."""

import string
from decimal import Decimal

from hypothesis import strategies as st

from core.errors import DomainError
from core.money import parse_amount

HTML = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "<b>bold</b>", "javascript:alert(1)",
        "{{ 7*7 }}", "{% debug %}", "&lt;&amp;"]
SQL = ["' OR '1'='1", "1; DROP TABLE accounts_account;--", "1' UNION SELECT password FROM accounts_user--",
       "%", "_", "\\", "'; --", "\" OR \"\"=\"", "1)) OR ((1=1"]
NULLS = ["\x00", "a\x00b", "10.00\x00", "\x00" * 30, "\x01\x02\x1f", "\x7f"]
ODD_UNICODE = ["\ud7ff\ufffe", "\u202eevil", "\u200b", "Ω≈ç√", "😀" * 5]
NUMBERS = ["NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "-inf", "1e3", "1E+2", "1e-2", "2e400",
           "0x10", "0b11", "1_000", "+5", "1,00", "1.2.3", "..", ".", "-", "--1", "1-", " 1 2 ", "１２３", "١٢٣",
           "१००", "๑๒", "½", "Ⅻ", "10.00 CNY", "¥10", "10%", "1e", "e1", "0.", ".5."]


def amount_is_valid(text: str, *, allow_zero: bool) -> bool:
    """R-MON-1's own parser decides what is a valid amount; the strategies keep only what it refuses."""
    try:
        parse_amount(text.strip(), allow_zero=allow_zero)
    except DomainError:
        return False
    return True


def bad_amounts(*, allow_zero: bool = False):
    """Amounts R-MON-1 refuses: negative, zero (where refused), too many decimals, huge, NaN, Infinity, exponent
    notation, non-ASCII digits, empty, very long, HTML, SQL, null bytes, and anything else."""
    negative = st.decimals(max_value=Decimal("-0.01"), min_value=Decimal("-1e15"), places=2).map(str)
    many_decimals = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1e6"), places=6).map(str)
    huge = st.integers(min_value=10 ** 12, max_value=10 ** 60).map(str)
    zero = st.sampled_from(["0", "0.00", "-0", "000", "0,000.00"])
    long = st.text(alphabet=string.digits, min_size=41, max_size=3000)
    anything = st.text(max_size=60)
    options = [negative, many_decimals, huge, long, anything, st.just(""), st.just("   "),
               st.sampled_from(NUMBERS + HTML + SQL + NULLS + ODD_UNICODE)]
    if not allow_zero:
        options.append(zero)
    return st.one_of(options).filter(lambda text: not amount_is_valid(text, allow_zero=allow_zero))


def bad_ids(foreign: list):
    """Ids that name nothing this user may use: another enterprise's, unknown, negative, huge, not numbers."""
    return st.one_of(
        st.sampled_from([str(x) for x in foreign]),
        st.integers(min_value=10 ** 6, max_value=10 ** 30).map(str),
        st.integers(max_value=0).map(str),
        st.sampled_from(["", "abc", "1.5", "1e3", "NaN", "None", "null", "[]", "١", "0x1", " ", "-1"] + SQL + NULLS
                        + ODD_UNICODE),
    )


def junk_text(*, min_size=0, max_size=80):
    """Free text of every kind: HTML, SQL, null bytes, very long, any Unicode."""
    return st.one_of(st.text(min_size=min_size, max_size=max_size),
                     st.sampled_from(HTML + SQL + NULLS + NUMBERS + ODD_UNICODE),
                     st.text(min_size=300, max_size=5000))
