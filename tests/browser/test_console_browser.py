"""The console in real Chromium (issue 3): each scenario acts as a person does, then reads the figures the page
shows and compares them with the database."""

import io
import re
from decimal import Decimal

import openpyxl
import pytest
from playwright.sync_api import expect

from accounts.models import Account, CreditContract, Folder, TransferRecord

from .conftest import assert_not_reloaded, login, mark_page, money, shot, wait_for_htmx
from .helpers import db_figures, row_locator, shown_account_pks, shown_figures, shown_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _acme(demo):
    return demo["enterprise"]


def _named(demo, name):
    return Account.objects.get(enterprise=demo["enterprise"], name=name)


def _status_text(count: int) -> str:
    return f"1–{count} of {count} account{'s' if count != 1 else ''}" if count else "0 accounts"


# --- 1. Sign in and filter the table (R-UAM-2) -------------------------------------------------------

def test_sign_in_and_filter_the_table_R_UAM_2(page, demo):
    """Search + folder filter (its subtree) + alert filter: exactly the matching rows, with their figures."""
    page.goto("/accounts/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    shot(page, "login.png")
    login(page, "admin")
    page.goto("/accounts/")
    enterprise = _acme(demo)
    all_accounts = Account.objects.filter(enterprise=enterprise)
    expect(page.locator("#table-status")).to_have_text(re.compile(rf"of {all_accounts.count()} accounts$"))
    shot(page, "accounts-table.png")

    production = Folder.objects.get(enterprise=enterprise, name="Production")
    mark_page(page)
    page.select_option("#f-folder", str(production.pk))
    in_production = [a for a in all_accounts.select_related("folder")
                     if a.folder_id and a.folder.path.startswith(production.path)]
    assert len(in_production) > 2
    expect(page.locator("#table-status")).to_have_text(_status_text(len(in_production)))

    page.select_option("#f-alert", "off")
    expected_off = [a for a in in_production if not a.alert_enabled]
    expect(page.locator("#table-status")).to_have_text(_status_text(len(expected_off)))

    # A search that keeps some of these rows and drops others: the name part of one bulk account.
    term = "a"
    expected = sorted((a for a in expected_off if term in a.name.lower() or term in a.account_id),
                      key=lambda a: (a.name, a.pk))
    assert 0 < len(expected) < len(in_production)
    page.fill("#f-q", term)
    expect(page.locator("#table-status")).to_have_text(_status_text(len(expected)))
    wait_for_htmx(page)
    assert shown_account_pks(page) == [a.pk for a in expected]  # sorted by name, as the table is by default
    for account in expected:
        assert shown_figures(page, account) == db_figures(account), account.name
        assert shown_row(page, account)["Alert"] == "Off"
    # HTMX swapped the table only, and all the state is in the URL (R-UAM-2).
    assert_not_reloaded(page)
    expect(page).to_have_url(re.compile(rf"q={term}.*folder={production.pk}.*alert=off"))
    page.reload()
    expect(page.locator("#table-status")).to_have_text(_status_text(len(expected)))
    assert shown_account_pks(page) == [a.pk for a in expected]


# --- 2. Confirm the contract, then change a credit limit (R-CR-1, R-CR-3 to R-CR-5) ------------------

def test_confirm_contract_then_change_credit_limit_R_CR_1_R_CR_4(page, demo):
    enterprise = _acme(demo)
    contract = CreditContract.objects.get(enterprise=enterprise)
    assert contract.status == CreditContract.Status.PENDING
    login(page, "admin")
    page.goto("/contracts/")
    row = page.locator(f'tr[data-contract="{contract.pk}"]')
    expect(row).to_contain_text("Pending confirmation")
    assert money(row.locator("td.num").inner_text()) == contract.total_credit_limit
    page.click("[data-testid=open-confirm]")
    dialog = page.locator(f"dialog#confirm-{contract.pk}")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(contract.contract_number)
    shot(page, "contracts.png")
    dialog.locator("[data-testid=confirm-contract]").click()
    expect(row).to_contain_text("Effective")
    expect(page.locator("#messages")).to_contain_text(f"{contract.contract_number} is confirmed")
    contract.refresh_from_db()
    assert contract.status == CreditContract.Status.EFFECTIVE
    assert contract.confirmed_by == demo["admin"]

    # Credit Quota Settings from a row of the table.
    analytics = _named(demo, "Analytics")
    before = db_figures(analytics)
    page.goto("/accounts/")
    mark_page(page)
    row_locator(page, analytics).get_by_role("link", name="Credit limit").click()
    drawer = page.locator("[data-testid=credit-drawer]")
    expect(drawer).to_be_visible()
    assert money(drawer.locator("[data-figure=current_credit_limit]").inner_text()) == before["Credit limit"]
    assert money(drawer.locator("[data-figure=available_credit]").inner_text()) == before["Available credit"]
    highest = money(drawer.locator("[data-figure=highest_credit_limit]").inner_text())
    new_limit = Decimal("12345.67")
    assert new_limit <= highest
    drawer.locator("input[name=new_limit]").fill("12,345.67")
    drawer.locator("input[name=reason]").fill("Quarterly budget")
    shot(page, "credit-drawer.png")
    drawer.get_by_role("button", name="Save credit limit").click()
    expect(page.locator("[data-testid=credit-drawer]")).to_have_count(0)
    expect(page.locator("#messages")).to_contain_text("to 12,345.67")
    expected = before | {"Credit limit": new_limit,
                         "Available credit": before["Available credit"] + new_limit - before["Credit limit"]}
    expect(row_locator(page, analytics).locator('td[data-label="Credit limit"]')).to_have_text("12,345.67")
    wait_for_htmx(page)
    assert db_figures(analytics) == expected
    assert shown_figures(page, analytics) == expected
    assert_not_reloaded(page)

    page.goto("/credit/")
    allocated = sum(Account.objects.filter(enterprise=enterprise).values_list("credit_limit", flat=True))
    assert money(page.locator("[data-figure=allocated]").inner_text()) == allocated
    expect(page.locator("body")).to_contain_text("Quarterly budget")
    shot(page, "credit-control.png")


# --- 3. Transfer then withdraw, with the confirmation step (R-TR-1 to R-TR-5, R-TR-7) -----------------

def _open_transfer(page, account):
    row_locator(page, account).get_by_role("link", name="Transfer", exact=True).click()
    drawer = page.locator("[data-testid=transfer-drawer]")
    expect(drawer).to_have_attribute("data-step", "edit")
    return drawer


def _preview(drawer, n):
    """The before/after rows of preview table ``n`` as {figure: (before, after)}."""
    rows = drawer.locator(f"[data-testid=preview-{n}] tbody tr")
    out = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        out[cells[0]] = (money(cells[1]), money(cells[2]))
    return out


def test_transfer_then_withdraw_with_confirmation_step_R_TR_3_R_TR_5_R_TR_7(page, demo):
    ma = Account.objects.get(enterprise=_acme(demo), is_management=True)
    identity = _named(demo, "Identity")
    ma_before, id_before = db_figures(ma), db_figures(identity)
    records_before = TransferRecord.objects.count()
    login(page, "admin")
    page.goto("/accounts/?q=Identity")
    mark_page(page)

    drawer = _open_transfer(page, identity)
    drawer.locator("select[name=payer]").select_option(str(ma.pk))
    drawer.locator("input[name=amount]").fill("1,234.56")
    drawer.locator("textarea[name=remark]").fill("Budget for the identity team")
    drawer.locator("[data-testid=review]").click()
    expect(drawer).to_have_attribute("data-step", "review")
    amount = Decimal("1234.56")
    assert money(drawer.locator("[data-figure=amount]").inner_text()) == amount
    payer_side, payee_side = _preview(drawer, 1), _preview(drawer, 2)
    assert payer_side["Own cash"] == (ma.own_cash, ma.own_cash - amount)
    assert payer_side["Available credit"] == (ma_before["Available credit"], ma_before["Available credit"] - amount)
    assert payee_side["Transfer book balance"] == (id_before["Transfer book balance"],
                                                   id_before["Transfer book balance"] + amount)
    assert payee_side["Available credit"] == (id_before["Available credit"], id_before["Available credit"] + amount)
    assert TransferRecord.objects.count() == records_before  # nothing moved before Confirm
    shot(page, "transfer-confirm.png")
    drawer.locator("[data-testid=confirm]").dblclick()  # a double click moves money once (R-TR-7)
    expect(page.locator("[data-testid=transfer-drawer]")).to_have_count(0)
    expect(page.locator("#messages")).to_contain_text("Transferred 1,234.56")
    wait_for_htmx(page)
    assert TransferRecord.objects.count() == records_before + 1
    id_after = id_before | {"Transfer book balance": id_before["Transfer book balance"] + amount,
                            "Cash balance": id_before["Cash balance"] + amount,
                            "Available credit": id_before["Available credit"] + amount}
    assert db_figures(identity) == id_after
    expect(row_locator(page, identity).locator('td[data-label="Transfer book balance"]')).to_have_text(
        f"{id_after['Transfer book balance']:,.2f}")
    assert shown_figures(page, identity) == id_after

    # Withdraw part of it back to the management account.
    drawer = _open_transfer(page, identity)
    drawer.get_by_label("Withdraw").check()
    expect(drawer.locator("select[name=source]")).to_be_visible()
    drawer.locator("select[name=source]").select_option(str(ma.pk))
    drawer.locator("input[name=amount]").fill("234.56")
    drawer.locator("textarea[name=remark]").fill("Unused budget returned")
    drawer.locator("[data-testid=review]").click()
    expect(drawer).to_have_attribute("data-step", "review")
    back = Decimal("234.56")
    from_side, to_side = _preview(drawer, 1), _preview(drawer, 2)
    assert from_side["Transfer book balance"] == (id_after["Transfer book balance"],
                                                  id_after["Transfer book balance"] - back)
    ma_mid = db_figures(ma)
    assert to_side["Available credit"] == (ma_mid["Available credit"], ma_mid["Available credit"] + back)
    drawer.locator("[data-testid=confirm]").dblclick()
    expect(page.locator("[data-testid=transfer-drawer]")).to_have_count(0)
    expect(page.locator("#messages")).to_contain_text("Withdrew 234.56")
    wait_for_htmx(page)
    assert TransferRecord.objects.count() == records_before + 2
    id_final = id_after | {"Transfer book balance": id_after["Transfer book balance"] - back,
                           "Cash balance": id_after["Cash balance"] - back,
                           "Available credit": id_after["Available credit"] - back}
    assert db_figures(identity) == id_final
    expect(row_locator(page, identity).locator('td[data-label="Transfer book balance"]')).to_have_text(
        f"{id_final['Transfer book balance']:,.2f}")
    assert shown_figures(page, identity) == id_final
    assert db_figures(ma)["Available credit"] == ma_before["Available credit"] - amount + back
    assert_not_reloaded(page)


# --- 4. Batch alert on three selected rows (R-AL-2) --------------------------------------------------

def test_batch_alert_on_three_selected_rows_R_AL_2(page, demo):
    enterprise = _acme(demo)
    login(page, "admin")
    page.goto("/accounts/?alert=off&size=20")
    wait_for_htmx(page)
    shown = shown_account_pks(page)
    chosen = list(Account.objects.filter(pk__in=shown[1:4]).order_by("name", "pk"))
    assert len(chosen) == 3 and not any(a.alert_enabled for a in chosen)
    others_before = dict(Account.objects.filter(enterprise=enterprise).exclude(pk__in=[a.pk for a in chosen])
                         .values_list("pk", "alert_enabled"))
    page.goto("/accounts/")  # all rows: the three must change, the rest must not
    mark_page(page)
    for account in chosen:
        row_locator(page, account).locator("input[name=accounts]").check()
    batch_button = page.locator("[data-batch-button]")
    expect(batch_button.locator("[data-batch-count]")).to_have_text("3")
    batch_button.click()
    drawer = page.locator("[data-testid=alert-batch-drawer]")
    expect(drawer.locator("[data-testid=batch-count]")).to_have_text("3")
    for account in chosen:
        expect(drawer).to_contain_text(account.account_id)
    drawer.locator("input[name=enabled]").check()
    drawer.locator("input[name=threshold]").fill("750")
    shot(page, "alerts-batch.png")
    drawer.get_by_role("button", name="Apply to 3 accounts").click()
    expect(page.locator("[data-testid=alert-batch-drawer]")).to_have_count(0)
    expect(page.locator("#messages")).to_contain_text("turned on for 3 accounts at a threshold of 750.00")
    for account in chosen:
        expect(row_locator(page, account).locator('td[data-label="Alert"]')).to_contain_text("On 750.00")
    wait_for_htmx(page)
    for account in chosen:
        account.refresh_from_db()
        assert account.alert_enabled and account.alert_threshold == Decimal("750.00")
    after = dict(Account.objects.filter(enterprise=enterprise).exclude(pk__in=[a.pk for a in chosen])
                 .values_list("pk", "alert_enabled"))
    assert after == others_before
    for account in Account.objects.filter(pk__in=shown_account_pks(page)):
        cell = shown_row(page, account)["Alert"]
        if account.alert_enabled:
            assert cell.startswith("On") and money(cell) == account.alert_threshold, account.name
        else:
            assert cell == "Off", account.name
    assert_not_reloaded(page)


# --- 5. Export of the filtered rows (R-UAM-4) --------------------------------------------------------

def test_export_downloads_the_filtered_rows_R_UAM_4(page, demo):
    enterprise = _acme(demo)
    development = Folder.objects.get(enterprise=enterprise, name="Development")
    login(page, "admin")
    page.goto("/accounts/")
    page.select_option("#f-folder", str(development.pk))
    expected = list(Account.objects.filter(enterprise=enterprise, folder__path__startswith=development.path))
    expect(page.locator("#table-status")).to_have_text(_status_text(len(expected)))
    wait_for_htmx(page)
    shown_count = int(re.search(r"of (\d+) account", page.inner_text("#table-status")).group(1))
    with page.expect_download() as info:
        page.click("#export-link")
    download = info.value
    assert download.suggested_filename.endswith(".xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(open(download.path(), "rb").read()), read_only=True)
    rows = list(workbook.active.iter_rows(values_only=True))
    header, data = rows[0], rows[1:]
    assert header[:4] == ("Account ID", "Account name", "Folder", "Available credit")
    assert len(data) == shown_count == len(expected)
    by_id = {row[0]: dict(zip(header, row)) for row in data}
    for account in expected:
        row = by_id[account.account_id]
        figures = db_figures(account)
        assert row["Account name"] == account.name
        for label in ("Available credit", "Cash balance", "Transfer book balance", "Credit limit", "Outstanding",
                      "Overdue"):
            assert Decimal(str(row[label])).quantize(Decimal("0.01")) == figures[label], (account.name, label)
        assert row["Low balance alert"] == ("On" if account.alert_enabled else "Off")


# --- 7. A member user (R-ORG-6) ----------------------------------------------------------------------

def test_member_sees_only_its_own_row_and_no_admin_actions_R_ORG_6(page, demo):
    member = demo["member"]
    own = member.account
    login(page, "member")
    expect(page.locator("[data-testid=who]")).to_contain_text("Member user")
    page.goto("/accounts/")
    wait_for_htmx(page)
    assert shown_account_pks(page) == [own.pk]
    assert shown_figures(page, own) == db_figures(own)
    expect(page.locator("#account-table input[type=checkbox]")).to_have_count(0)
    expect(page.locator("[data-batch-button]")).to_have_count(0)
    expect(page.locator("#f-folder")).to_have_count(0)
    actions = row_locator(page, own).locator('td[data-label="Actions"]')
    expect(actions.get_by_role("link")).to_have_text(["Details"])
    nav = page.locator("nav.sidenav")
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    # Called directly, the administrator's actions are refused; another account is not found.
    assert page.goto(f"/accounts/{own.pk}/credit/").status == 403
    assert page.goto(f"/accounts/{own.pk}/transfer/").status == 403
    other = _named(demo, "Data lake")
    assert page.goto(f"/accounts/{other.pk}/").status == 404
    page.goto(f"/accounts/{own.pk}/")
    expect(page.locator("[data-testid=account-id]")).to_have_text(own.account_id)
    expect(page.locator(".head-actions")).to_have_count(0)


def test_account_details_figures_R_UAM_5(page, demo):
    storefront = _named(demo, "Web storefront")
    login(page, "admin")
    page.goto("/accounts/")
    row_locator(page, storefront).get_by_role("link", name="Details").click()
    figures = page.locator("[data-testid=account-figures]")
    expect(page.locator("[data-testid=account-id]")).to_have_text(storefront.account_id)
    shown = {label: money(figures.locator(".figure", has_text=label).locator(".value").inner_text())
             for label in ("Available credit", "Cash balance", "Transfer book balance", "Credit limit",
                           "Outstanding", "Overdue")}
    assert shown == db_figures(storefront)
    shot(page, "account-details.png")


# --- 8. Without JavaScript: a transfer through the full-page drawer ----------------------------------

def test_transfer_without_javascript_full_page_drawer_R_TR_3(nojs_page, demo):
    page = nojs_page
    ma = Account.objects.get(enterprise=_acme(demo), is_management=True)
    logging = _named(demo, "Logging")
    before = db_figures(logging)
    records_before = TransferRecord.objects.count()
    login(page, "admin")
    page.goto("/accounts/?q=Logging")
    row_locator(page, logging).get_by_role("link", name="Transfer", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/accounts/{logging.pk}/transfer/\?next="))  # a page, not a drawer
    form = page.locator("[data-testid=transfer-drawer]")
    form.locator("select[name=payer]").select_option(str(ma.pk))
    form.locator("input[name=amount]").fill("300")
    form.locator("textarea[name=remark]").fill("Top up logging before the alert fires")
    form.locator("[data-testid=review]").click()
    expect(page.locator("[data-testid=transfer-drawer]")).to_have_attribute("data-step", "review")
    assert money(page.locator("[data-figure=amount]").inner_text()) == Decimal("300.00")
    assert TransferRecord.objects.count() == records_before
    page.locator("[data-testid=confirm]").click()
    expect(page).to_have_url(re.compile(r"/accounts/\?q=Logging$"))
    expect(page.locator("#messages")).to_contain_text("Transferred 300.00")
    assert TransferRecord.objects.count() == records_before + 1
    after = before | {k: before[k] + Decimal("300.00")
                      for k in ("Transfer book balance", "Cash balance", "Available credit")}
    assert db_figures(logging) == after
    assert shown_figures(page, logging) == after
