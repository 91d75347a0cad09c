"""Export of the account table to .xlsx (R-UAM-4): headers, numeric money with two decimals, ids as
text, exactly the rows of the current search and filter (all pages), safe text, per role."""

import io
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from accounts.models import Account
from tests.console.accounts_fixtures import acme, bulk_accounts, member, other, fast_passwords  # noqa: F401

URL = reverse("console:accounts_export")
HEADERS = ["Account ID", "Account name", "Folder", "Available credit", "Cash balance", "Transfer book balance",
           "Credit limit", "Outstanding", "Overdue", "Coupons", "Low balance alert", "Alert threshold"]


def read(response):
    body = b"".join(response.streaming_content)
    sheet = load_workbook(io.BytesIO(body)).active
    return list(sheet.iter_rows())


def values(rows):
    return [[cell.value for cell in row] for row in rows]


def test_anonymous_is_sent_to_sign_in_R_ORG_6(client, acme):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_export_file_headers_types_and_formats_R_UAM_4(client, acme):
    client.force_login(acme["admin"])
    response = client.get(URL, {"q": "Beta"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert f'filename="accounts-{timezone.localdate():%Y%m%d}.xlsx"' in response["Content-Disposition"]
    rows = read(response)
    assert [c.value for c in rows[0]] == HEADERS
    assert len(rows) == 2
    beta = {h: c for h, c in zip(HEADERS, rows[1])}
    assert beta["Account ID"].value == acme["beta"].account_id
    assert beta["Account ID"].data_type == "s" and beta["Account ID"].number_format == "@"
    for column, expected in (("Available credit", -200), ("Cash balance", 0), ("Credit limit", 300),
                             ("Outstanding", 500), ("Overdue", 0), ("Alert threshold", 100)):
        cell = beta[column]
        assert cell.data_type == "n" and cell.number_format == "#,##0.00", column
        assert cell.value == expected, column
    assert beta["Folder"].value == "Backend"
    assert beta["Low balance alert"].value == "On"
    assert beta["Coupons"].value == 0


def test_money_keeps_the_cents_R_UAM_4_R_MON_1(client, acme):
    from tests import factories

    factories.fund(acme["alpha"], "0.35")
    client.force_login(acme["admin"])
    rows = read(client.get(URL, {"q": "Alpha"}))
    assert str(rows[1][3].value) in ("1000.35",)  # a number, exactly the cents
    assert rows[1][3].number_format == "#,##0.00"


def test_export_has_exactly_the_filtered_rows_of_all_pages_R_UAM_4(client, acme):
    bulk_accounts(acme["enterprise"], 120, folder=acme["sales"], prefix="Sales bulk")
    client.force_login(acme["admin"])
    rows = values(read(client.get(URL, {"folder": acme["sales"].pk, "size": 20, "page": 3,
                                        "sort": "-cash_balance"})))[1:]
    expected = list(Account.objects.filter(enterprise=acme["enterprise"], folder=acme["sales"]))
    assert len(rows) == len(expected) == 121  # every page, not only the 20 shown
    assert {r[0] for r in rows} == {a.account_id for a in expected}
    cash = [r[4] for r in rows]
    assert cash == sorted(cash, reverse=True)  # in the table's order
    below = values(read(client.get(URL, {"alert": "below"})))[1:]
    expected_below = {a.account_id for a in Account.objects.filter(enterprise=acme["enterprise"])
                      if a.alert_enabled and a.available_credit < a.alert_threshold}
    assert acme["beta"].account_id in expected_below
    assert {r[0] for r in below} == expected_below and len(below) == len(expected_below)


def test_text_cells_cannot_become_formulas(client, acme):
    """Names starting with = + - @ are written with a leading apostrophe (formula injection)."""
    from tests import factories

    for name in ("=HYPERLINK(\"http://x\")", "+1+2", "-3", "@SUM(A1)"):
        factories.make_account(enterprise=acme["enterprise"], name=name)
    client.force_login(acme["admin"])
    rows = read(client.get(URL))
    names = {row[1].value for row in rows[1:]}
    assert {"'=HYPERLINK(\"http://x\")", "'+1+2", "'-3", "'@SUM(A1)"} <= names
    assert all(row[1].data_type == "s" for row in rows[1:])


def test_member_exports_only_its_own_row_R_ORG_6(client, acme, member):
    client.force_login(member)
    rows = values(read(client.get(URL)))
    assert rows[0] == HEADERS
    assert [r[1] for r in rows[1:]] == ["Alpha Web"]


def test_admin_of_another_enterprise_exports_only_its_own_enterprise_R_ORG_6(client, acme, other):
    client.force_login(other["admin"])
    rows = values(read(client.get(URL, {"folder": acme["eng"].pk})))
    assert {r[1] for r in rows[1:]} == {"Globex management", "Globex Secret"}


def test_export_link_carries_the_current_search_and_filter(client, acme):
    client.force_login(acme["admin"])
    html = client.get(reverse("console:accounts"), {"q": "Beta", "alert": "on", "page": 2}).content.decode()
    link = re.search(r'<a id="export-link"[^>]*href="([^"]+)"', html).group(1)
    assert link.startswith(URL + "?") and "q=Beta" in link and "alert=on" in link and "page=" not in link


@pytest.mark.slow
def test_export_of_10000_accounts_writes_every_row_R_UAM_4(client, ent):
    """Every one of 10,000 accounts is in the file. Its speed and memory are measured by bench/bench_export.py
    (figures in bench/RESULTS.md), not by a timed test."""
    enterprise, ma, admin = ent
    bulk_accounts(enterprise, 10000)
    client.force_login(admin)
    response = client.get(URL)
    body = b"".join(response.streaming_content)
    assert sum(1 for _ in load_workbook(io.BytesIO(body), read_only=True).active.iter_rows()) == 10002


def test_resource_is_a_real_import_export_resource_R_UAM_4(acme):
    """The same Resource drives django-import-export's own export: the columns are defined once."""
    from accounts import selectors
    from console.resources import AccountTableResource

    dataset = AccountTableResource().export(queryset=selectors.account_table(acme["enterprise"], search="Beta"))
    assert dataset.headers == HEADERS
    assert dataset[0][0] == acme["beta"].account_id and dataset[0][10] == "On"


def test_control_characters_and_spaces_in_names_keep_the_file_readable(client, acme):
    from tests import factories

    factories.make_account(enterprise=acme["enterprise"], name="  Bell\x07 & <Co>  ")
    client.force_login(acme["admin"])
    names = {row[1].value for row in read(client.get(URL, {"q": "Bell"}))[1:]}
    assert names == {"  Bell & <Co>  "}


def test_export_neutralises_a_formula_after_leading_spaces_R_UAM_4():
    from console.resources import neutralise

    assert neutralise("  =1+2") == "'  =1+2"
    assert neutralise("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert neutralise("  Acme ops") == "  Acme ops"
