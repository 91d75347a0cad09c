"""The unified account management table (R-UAM-1 to R-UAM-3): roles, HTMX fragments, search, filters,
sorting, pagination, row actions and their blockers, and a fixed number of queries per page."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import selectors, services
from accounts.models import Account, CreditContract
from tests import factories
from tests.console.accounts_fixtures import (  # noqa: F401
    HX_SUMMARY, HX_TABLE, acme, bulk_accounts, fast_passwords, member, other)

URL = reverse("console:accounts")


def row_names(response):
    """Account names of the table rows, in order."""
    return re.findall(r'class="account-name" href="[^"]+">([^<]+)</a>', response.content.decode())


def login(client, user):
    client.force_login(user)
    return client


# --- Roles (R-ORG-6) ---------------------------------------------------------------------------------

def test_anonymous_is_sent_to_sign_in_R_ORG_6(client, acme):
    for headers in ({}, HX_TABLE):
        response = client.get(URL, **headers)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_admin_sees_every_account_of_its_enterprise_R_UAM_1(client, acme):
    response = login(client, acme["admin"]).get(URL)
    assert response.status_code == 200
    assert row_names(response) == sorted(["Acme management", "Alpha Web", "Beta Payments", "Gamma Sales",
                                          "Delta Partner"])
    html = response.content.decode()
    assert 'id="account-table"' in html and 'id="account-summary"' in html and "<html" in html


def test_admin_of_another_enterprise_never_sees_this_enterprise_R_ORG_6(client, acme, other):
    response = login(client, other["admin"]).get(URL + "?q=a")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Alpha Web" not in html and "Beta Payments" not in html
    assert set(row_names(login(client, other["admin"]).get(URL))) == {"Globex management", "Globex Secret"}


def test_admin_of_another_enterprise_cannot_filter_by_this_enterprise_folder_R_ORG_6(client, acme, other):
    response = login(client, other["admin"]).get(URL, {"folder": acme["eng"].pk})
    assert set(row_names(response)) == {"Globex management", "Globex Secret"}  # unknown folder: no filter
    assert "Engineering" not in response.content.decode()


def test_member_sees_only_its_own_row_without_admin_actions_R_ORG_6(client, acme, member):
    response = login(client, member).get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert row_names(response) == ["Alpha Web"]
    assert 'name="accounts"' not in html  # no row selection
    assert reverse("console:alert_batch") not in html
    assert reverse("console:credit_drawer", args=[acme["alpha"].pk]) not in html
    assert reverse("console:transfer_drawer", args=[acme["alpha"].pk]) not in html
    assert reverse("console:account_detail", args=[acme["alpha"].pk]) in html
    # a member cannot widen its view through the query string
    assert row_names(login(client, member).get(URL, {"q": "Beta"})) == []


def test_account_manager_without_account_is_refused_R_ORG_6(client, acme):
    response = login(client, factories.make_manager()).get(URL)
    assert response.status_code == 403


# --- One view, two renderings --------------------------------------------------------------------------

def test_htmx_table_request_returns_only_the_table_fragment_R_UAM_2(client, acme):
    response = login(client, acme["admin"]).get(URL + "?sort=-available_credit", **HX_TABLE)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="account-table"')
    assert "<html" not in html and 'id="account-summary"' not in html
    # the toolbar's sort select and export link follow the table out of band
    assert 'id="f-sort"' in html and 'id="export-link"' in html and html.count('hx-swap-oob="true"') == 2
    assert 'value="-available_credit" selected' in html
    assert response["HX-Push-Url"] == URL + "?sort=-available_credit"
    assert "HX-Request" in response["Vary"]


def test_table_refresh_after_accountChanged_does_not_push_history(client, acme):
    response = login(client, acme["admin"]).get(URL + "?q=Alpha", HTTP_HX_TRIGGER="account-table", **HX_TABLE)
    assert response.status_code == 200
    assert "HX-Push-Url" not in response


def test_table_and_summary_refresh_on_accountChanged_with_the_current_url(client, acme):
    html = login(client, acme["admin"]).get(URL + "?q=Alpha&sort=-credit_limit&size=20").content.decode()
    table = re.search(r'<div id="account-table"[^>]*>', html).group(0)
    summary = re.search(r'<div id="account-summary"[^>]*>', html).group(0)
    for tag in (table, summary):
        assert 'hx-trigger="accountChanged from:body"' in tag
        assert 'hx-get="/accounts/?q=Alpha&amp;sort=-credit_limit&amp;size=20"' in tag
        assert 'hx-target="this"' in tag and 'hx-swap="outerHTML"' in tag


def test_htmx_summary_request_returns_only_the_figures_R_MON_3(client, acme):
    response = login(client, acme["admin"]).get(URL, **HX_SUMMARY)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="account-summary"')
    assert 'id="account-table"' not in html
    # 5 accounts; available credit = 100,000 - 0 (MA) + 1,000 + (-200) + 50 + 0
    assert ">5</div>" in html
    assert "100,850.00" in html


def test_history_restore_request_gets_the_whole_page(client, acme):
    response = login(client, acme["admin"]).get(URL, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HX_TABLE)
    assert "<html" in response.content.decode()


# --- Columns and formatting (R-UAM-1, R-AL-4) ---------------------------------------------------------

def test_row_shows_figures_formatted_and_negative_available_credit_in_red_R_UAM_1(client, acme):
    html = login(client, acme["admin"]).get(URL, {"q": "Beta"}).content.decode()
    row = re.search(r'<tr data-account="%d">(.*?)</tr>' % acme["beta"].pk, html, re.S).group(1)
    assert re.search(r'class="num negative" data-label="Available credit">-200.00<', row)
    assert 'data-label="Credit limit">300.00<' in row
    assert 'data-label="Outstanding">500.00<' in row
    assert 'data-label="Overdue">0.00<' in row
    assert ">Backend<" in row and f'title="{acme["root"].name} / Engineering / Backend"' in row
    assert ">On</span>" in row and "100.00" in row and ">Below</span>" in row


def test_alert_status_off_and_on_without_below_marker_R_AL_4(client, acme):
    html = login(client, acme["admin"]).get(URL).content.decode()
    alpha = re.search(r'<tr data-account="%d">(.*?)</tr>' % acme["alpha"].pk, html, re.S).group(1)
    gamma = re.search(r'<tr data-account="%d">(.*?)</tr>' % acme["gamma"].pk, html, re.S).group(1)
    assert ">On</span>" in alpha and "500.00" in alpha and "Below" not in alpha
    assert ">Off</span>" in gamma


def test_thousands_separators_in_money_cells_R_MON_1(client, acme):
    html = login(client, acme["admin"]).get(URL, {"q": "management"}).content.decode()
    assert 'data-label="Available credit">100,000.00<' in html


# --- Row actions and their blockers (R-CR-1, R-CR-6, R-ORG-5) ------------------------------------------

def test_row_actions_link_to_the_drawers_per_the_contract(client, acme):
    html = login(client, acme["admin"]).get(URL).content.decode()
    pk = acme["alpha"].pk
    for name in ("credit_drawer", "transfer_drawer", "transfer_records_drawer", "alert_drawer"):
        url = reverse(f"console:{name}", args=[pk])
        assert re.search(r'<a href="%s\?next=[^"]*" hx-get="%s\?next=[^"]*" hx-target="#drawer"' % (url, url), html)
    assert reverse("console:account_detail", args=[pk]) in html


def test_every_row_links_to_its_own_account_only(client, acme):
    """The action cells are built once per page for rows with the same reasons; each row still gets its own links."""
    bulk_accounts(acme["enterprise"], 30)
    html = login(client, acme["admin"]).get(URL, {"size": 50}).content.decode()
    rows = re.findall(r'<tr data-account="(\d+)">(.*?)</tr>', html, re.S)
    assert len(rows) == 35
    for pk, row in rows:
        assert set(re.findall(r'href="/accounts/(\d+)/', row)) == {pk}
        assert row.count(f'href="/accounts/{pk}/"') == 2  # the name and "Details"
        assert f'href="{reverse("console:alert_drawer", args=[int(pk)])}?next=' in row


def test_disabled_account_shows_credit_and_transfer_disabled_with_reason_R_CR_6(client, acme):
    html = login(client, acme["admin"]).get(URL).content.decode()
    gamma = re.search(r'<tr data-account="%d">(.*?)</tr>' % acme["gamma"].pk, html, re.S).group(1)
    assert reverse("console:credit_drawer", args=[acme["gamma"].pk]) not in gamma
    assert reverse("console:transfer_drawer", args=[acme["gamma"].pk]) not in gamma
    assert gamma.count('aria-disabled="true"') == 2
    assert "significant receivables with long-overdue history" in gamma
    assert reverse("console:alert_drawer", args=[acme["gamma"].pk]) in gamma  # alerts stay available


def test_other_company_account_shows_reason_R_ORG_5(client, acme):
    html = login(client, acme["admin"]).get(URL).content.decode()
    delta = re.search(r'<tr data-account="%d">(.*?)</tr>' % acme["delta"].pk, html, re.S).group(1)
    assert "verified as a different company" in delta
    assert reverse("console:transfer_drawer", args=[acme["delta"].pk]) not in delta


def test_credit_limit_disabled_for_every_row_without_effective_contract_R_CR_1(client, other):
    html = login(client, other["admin"]).get(URL).content.decode()
    assert reverse("console:credit_drawer", args=[other["account"].pk]) not in html
    assert len(re.findall(r'data-reason="[^"]*no credit control contract', html)) == 2
    assert reverse("console:transfer_drawer", args=[other["account"].pk]) in html


def test_page_blockers_equal_the_service_blocker_for_every_case_R_CR_1_R_CR_6_R_ORG_5(acme, other):
    """``credit_blockers_for_page`` says exactly what ``services.credit_blocker`` says, per account."""
    cases = [(acme["enterprise"], [acme[k] for k in ("ma", "alpha", "beta", "gamma", "delta")]),
             (other["enterprise"], [other["ma"], other["account"]])]
    for enterprise, accounts in cases:
        page = selectors.credit_blockers_for_page(enterprise, accounts)
        for account in accounts:
            expected = services.credit_blocker(account)
            assert page[account.pk]["credit"] == (expected.message if expected else None)
    pending = factories.make_enterprise(name="Initech")[0]
    services.credit_contract_grant(actor=None, enterprise=pending, total_credit_limit="5.00")
    account = factories.make_account(enterprise=pending)
    assert CreditContract.objects.get(enterprise=pending).status == "pending"
    assert (selectors.credit_blockers_for_page(pending, [account])[account.pk]["credit"]
            == services.credit_blocker(account).message)


def test_page_blockers_cost_one_query_whatever_the_page_size(acme):
    accounts = list(Account.objects.filter(enterprise=acme["enterprise"]))
    with CaptureQueriesContext(connection) as ctx:
        selectors.credit_blockers_for_page(acme["enterprise"], accounts)
    assert len(ctx.captured_queries) == 1


# --- Search, filters (R-UAM-2) ----------------------------------------------------------------------

def test_search_by_name_case_insensitive_R_UAM_2(client, acme):
    assert row_names(login(client, acme["admin"]).get(URL, {"q": "beta"})) == ["Beta Payments"]


def test_search_by_account_id_R_UAM_2(client, acme):
    account_id = acme["gamma"].account_id
    assert row_names(login(client, acme["admin"]).get(URL, {"q": account_id})) == ["Gamma Sales"]
    assert "Gamma Sales" in row_names(login(client, acme["admin"]).get(URL, {"q": account_id[-6:]}))


def test_folder_filter_keeps_the_subtree_R_UAM_2(client, acme):
    c = login(client, acme["admin"])
    assert row_names(c.get(URL, {"folder": acme["eng"].pk})) == ["Alpha Web", "Beta Payments"]
    assert row_names(c.get(URL, {"folder": acme["backend"].pk})) == ["Beta Payments"]
    assert row_names(c.get(URL, {"folder": acme["sales"].pk})) == ["Gamma Sales"]
    assert len(row_names(c.get(URL, {"folder": acme["root"].pk}))) == 5


def test_folder_select_is_an_indented_tree(client, acme):
    html = login(client, acme["admin"]).get(URL).content.decode()
    assert re.search(r'<option value="%d">\u2003Engineering</option>' % acme["eng"].pk, html)
    assert re.search(r'<option value="%d">\u2003\u2003Backend</option>' % acme["backend"].pk, html)


def test_alert_filter_on_off_below_R_UAM_2_R_AL_4(client, acme):
    c = login(client, acme["admin"])
    assert row_names(c.get(URL, {"alert": "on"})) == ["Alpha Web", "Beta Payments"]
    assert row_names(c.get(URL, {"alert": "below"})) == ["Beta Payments"]
    assert row_names(c.get(URL, {"alert": "off"})) == ["Acme management", "Delta Partner", "Gamma Sales"]
    assert len(row_names(c.get(URL, {"alert": "nonsense"}))) == 5


def test_filters_combine_R_UAM_2(client, acme):
    c = login(client, acme["admin"])
    assert row_names(c.get(URL, {"folder": acme["eng"].pk, "alert": "below"})) == ["Beta Payments"]
    assert row_names(c.get(URL, {"folder": acme["eng"].pk, "q": "alpha"})) == ["Alpha Web"]


def test_empty_result_says_so_with_a_way_out(client, acme):
    html = login(client, acme["admin"]).get(URL, {"q": "no such account"}).content.decode()
    assert "No account matches this search and filter." in html
    assert "0 accounts" in html


# --- Sorting (R-UAM-2) -------------------------------------------------------------------------------

SORT_VALUES = {
    "available_credit": lambda a: a.available_credit,
    "cash_balance": lambda a: a.cash_balance,
    "transfer_book_balance": lambda a: a.transfer_book_balance,
    "credit_limit": lambda a: a.credit_limit,
    "outstanding": lambda a: a.outstanding_balance,
    "alert_threshold": lambda a: a.alert_threshold,
    "name": lambda a: a.name,
    "account_id": lambda a: a.account_id,
}


@pytest.mark.parametrize("key", sorted(SORT_VALUES))
def test_sort_every_money_column_both_ways_with_pk_tiebreak_R_UAM_2(acme, key):
    bulk_accounts(acme["enterprise"], 60)
    accounts = list(Account.objects.filter(enterprise=acme["enterprise"]))
    value = SORT_VALUES[key]
    ascending = [a.pk for a in sorted(accounts, key=lambda a: (value(a), a.pk))]
    descending = [a.pk for a in sorted(accounts, key=lambda a: (value(a), a.pk), reverse=True)]
    qs = selectors.account_table(acme["enterprise"], sort=key)
    assert [a.pk for a in qs] == ascending
    assert [a.pk for a in selectors.account_table(acme["enterprise"], sort=f"-{key}")] == descending


@pytest.mark.postgres
@pytest.mark.parametrize("sort", ["-available_credit", "available_credit"])
def test_sort_by_available_credit_can_read_its_page_from_the_index(acme, sort):
    """``account_available_credit_idx`` is on the very expression the table sorts by, so a page sorted by available
    credit need not compute and sort the figure of every account (bench/RESULTS.md section 1)."""
    bulk_accounts(acme["enterprise"], 200)
    sql, params = selectors.account_table(acme["enterprise"], sort=sort)[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")  # the test database is small: make a sort the dear plan
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan" in plan and "account_available_credit_idx" in plan, plan


def test_sort_by_overdue_uses_the_bills_past_due_R_UAM_2_R_MON_2(acme):
    from accounts.models import Bill
    from accounts.selectors import today
    from datetime import timedelta

    Bill.objects.filter(account=acme["beta"]).update(due_date=today() - timedelta(days=1))
    rows = list(selectors.account_table(acme["enterprise"], sort="-overdue"))
    assert rows[0].pk == acme["beta"].pk and rows[0].overdue_amount == Decimal("500.00")
    assert all(r.overdue_amount == 0 for r in rows[1:])
    assert list(selectors.account_table(acme["enterprise"], sort="overdue"))[-1].pk == acme["beta"].pk


def test_sort_through_the_page_and_unknown_sort_falls_back_to_name(client, acme):
    c = login(client, acme["admin"])
    assert row_names(c.get(URL, {"sort": "-available_credit"}))[:2] == ["Acme management", "Alpha Web"]
    assert row_names(c.get(URL, {"sort": "available_credit"}))[0] == "Beta Payments"
    assert row_names(c.get(URL, {"sort": "password"})) == sorted(row_names(c.get(URL)))


def test_sort_header_links_keep_the_filters_and_toggle_direction_R_UAM_2(client, acme):
    html = login(client, acme["admin"]).get(URL, {"q": "a", "sort": "-credit_limit"}).content.decode()
    assert 'href="/accounts/?q=a&amp;sort=credit_limit"' in html  # the sorted column toggles
    assert 'href="/accounts/?q=a&amp;sort=-outstanding"' in html  # another money column: largest first
    assert 'aria-sort="descending"' in html


# --- Pagination and page size (R-UAM-2) --------------------------------------------------------------

def test_pagination_and_page_size_in_the_url_R_UAM_2(client, acme):
    bulk_accounts(acme["enterprise"], 45)  # 50 accounts in all
    c = login(client, acme["admin"])
    first = c.get(URL, {"size": 20})
    assert len(row_names(first)) == 20
    assert "1–20 of 50 accounts" in first.content.decode()
    third = c.get(URL, {"size": 20, "page": 3})
    assert len(row_names(third)) == 10
    assert "41–50 of 50 accounts" in third.content.decode()
    all_names = row_names(c.get(URL, {"size": 100}))
    assert len(all_names) == 50
    assert row_names(first) + row_names(c.get(URL, {"size": 20, "page": 2})) + row_names(third) == all_names


def test_page_links_keep_search_sort_and_size(client, acme):
    bulk_accounts(acme["enterprise"], 45)
    html = login(client, acme["admin"]).get(URL, {"q": "Bulk", "sort": "-cash_balance", "size": 20}).content.decode()
    assert 'href="/accounts/?q=Bulk&amp;sort=-cash_balance&amp;size=20&amp;page=2"' in html


def test_bad_page_and_size_fall_back_safely(client, acme):
    c = login(client, acme["admin"])
    assert len(row_names(c.get(URL, {"size": "7"}))) == 5  # not a choice: the default 50
    assert len(row_names(c.get(URL, {"page": "999"}))) == 5  # past the end: the last page
    assert len(row_names(c.get(URL, {"page": "x", "size": "-1", "folder": "y"}))) == 5


# --- A fixed number of queries whatever the page size and the number of accounts ---------------------

FULL_PAGE_QUERIES = 8  # session, user, account+enterprise+contract, unread messages, folders,
#                        summary totals with the table's row count, summary overdue, rows
TABLE_FRAGMENT_QUERIES = 7  # the same with a COUNT of the table's rows instead of the two summary queries


def _add_bills(enterprise, n):
    """Some unpaid bills past due for the first accounts, so the overdue subquery has rows to sum."""
    from datetime import timedelta

    from accounts.models import Bill, Operation
    from accounts.selectors import today
    from django.utils import timezone

    op = Operation.objects.create(kind="charge", external_amount=Decimal("-1.00"), created_at=timezone.now())
    accounts = Account.objects.filter(enterprise=enterprise).order_by("pk")[:n]
    Bill.objects.bulk_create([Bill(account=a, operation=op, amount=Decimal("9.00"), unpaid_amount=Decimal("9.00"),
                                   created_at=timezone.now(), due_date=today() - timedelta(days=3)) for a in accounts])


@pytest.mark.parametrize("total", [50, 5000])
def test_full_page_query_count_is_fixed_at_50_and_5000_accounts_R_UAM_2(client, ent, django_assert_num_queries,
                                                                       total):
    enterprise, ma, admin = ent
    bulk_accounts(enterprise, total - 1)
    _add_bills(enterprise, 30)
    client.force_login(admin)
    for size in (20, 500):
        with django_assert_num_queries(FULL_PAGE_QUERIES):
            response = client.get(URL, {"size": size, "sort": "-overdue"})
        assert len(row_names(response)) == min(size, total)
    with django_assert_num_queries(TABLE_FRAGMENT_QUERIES):
        response = client.get(URL, {"size": 100, "alert": "on", "q": "Bulk"}, **HX_TABLE)
    assert response.status_code == 200


def test_count_query_has_no_per_row_subquery(client, ent):
    """The count of the table's rows (with the summary totals on a full page, a COUNT of its own on an HTMX
    refresh) does not compute the overdue subquery for every row."""
    enterprise, ma, admin = ent
    bulk_accounts(enterprise, 30)
    client.force_login(admin)
    for headers in ({}, HX_TABLE):
        with CaptureQueriesContext(connection) as ctx:
            client.get(URL, **headers)
        counts = [q["sql"] for q in ctx.captured_queries
                  if q["sql"].upper().startswith("SELECT COUNT(") and "accounts_account" in q["sql"]]
        assert len(counts) == 1
        assert "accounts_bill" not in counts[0].lower()


TABLE_FILTERS = [{}, {"q": "bulk 0001"}, {"q": "no such account"}, {"folder": "eng"}, {"folder": "root"},
                 {"alert": "on"}, {"alert": "off"}, {"alert": "below"}, {"q": "bulk", "alert": "below"},
                 {"folder": "eng", "alert": "below"}, {"folder": "backend", "q": "bulk 0004"}, {"folder": "backend", "q": "bulk 0001"}]


@pytest.mark.parametrize("params", TABLE_FILTERS)
def test_row_count_is_the_number_of_accounts_the_filters_keep_R_UAM_2(client, acme, params):
    """The "of N accounts" of a full page (counted with the summary) and of an HTMX refresh (a COUNT of its own)
    is the number of the enterprise's accounts that match, counted here in Python."""
    bulk_accounts(acme["enterprise"], 40, folder=acme["eng"])
    bulk_accounts(acme["enterprise"], 30, folder=acme["backend"], start=40)
    folder = acme[params["folder"]] if "folder" in params else None
    params = {**params, "folder": folder.pk} if folder else params
    expected = sum(
        1 for a in Account.objects.filter(enterprise=acme["enterprise"]).select_related("folder")
        if (not params.get("q") or params["q"].lower() in a.name.lower() or params["q"] in a.account_id)
        and (folder is None or (a.folder is not None and a.folder.path.startswith(folder.path)))
        and {"on": a.alert_enabled, "off": not a.alert_enabled,
             "below": a.alert_enabled and a.available_credit < a.alert_threshold}.get(params.get("alert"), True))
    c = login(client, acme["admin"])
    full = c.get(URL, {**params, "size": 20}).content.decode()
    fragment = c.get(URL, {**params, "size": 20}, **HX_TABLE).content.decode()
    status = (f"1–{min(expected, 20)} of {expected} account{'s' if expected != 1 else ''}" if expected
              else "0 accounts")
    assert status in full and status in fragment
