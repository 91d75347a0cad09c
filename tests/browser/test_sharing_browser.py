"""Equity asset sharing in real Chromium (issue 4): share with a folder, move an account out of it, read the
share history."""

import pytest
from django.utils import dateformat, timezone
from playwright.sync_api import expect

from accounts.models import Account, Folder
from sharing.models import Asset, AssetType, Grant, ScopeType

from .conftest import login, shot, wait_for_htmx

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _shown_time(value) -> str:
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i:s")


def test_share_with_folder_then_move_account_out_ends_its_grant_R_SH_2_R_SH_6(page, demo):
    """Shared with folder *Data platform*: its accounts receive the asset at once; moving one out of the folder
    ends that account's grant then (effective-to in the history), the others stay in force."""
    enterprise = demo["enterprise"]
    folder = Folder.objects.get(enterprise=enterprise, name="Data platform")
    destination = Folder.objects.get(enterprise=enterprise, name="Shared services")
    now = timezone.now()
    asset = (Asset.objects.filter(owner__enterprise=enterprise, asset_type=AssetType.SAVINGS_PLAN,
                                  scope_type=ScopeType.NONE, valid_to__gt=now).order_by("pk").first()
             or Asset.objects.filter(owner__enterprise=enterprise, asset_type=AssetType.SAVINGS_PLAN,
                                     valid_to__gt=now).exclude(owner__folder=folder).order_by("pk").first())
    assert asset is not None
    in_folder = [a for a in Account.objects.filter(enterprise=enterprise, folder__path__startswith=folder.path)
                 if a.pk != asset.owner_id]
    assert len(in_folder) >= 2

    login(page, "admin")
    page.goto("/sharing/assets/savings_plan/")
    row = page.locator(f'tr[data-asset="{asset.asset_id}"]')
    expect(row).to_be_visible()
    shot(page, "sharing-assets.png")
    row.get_by_role("link", name="Share").click()
    form = page.locator("[data-testid=share-form]")
    expect(form).to_be_visible()
    form.get_by_label("Folders").check()  # the scope type radio re-renders the drawer with the folder picker
    folder_box = form.locator(f'input[name=folders][value="{folder.pk}"]')
    expect(folder_box).to_be_visible()
    checked = form.locator("input[name=folders]:checked")
    while checked.count():
        checked.first.uncheck()
    folder_box.check()
    form.get_by_role("button", name="Update count").click()
    expect(page.locator("[data-testid=share-count] strong")).to_have_text(str(len(in_folder)))
    shot(page, "share-drawer.png")
    page.locator("[data-testid=share-form]").get_by_role("button", name="Share", exact=True).click()
    expect(page.locator("[data-testid=share-form]")).to_have_count(0)  # the drawer closed
    open_grants = Grant.objects.filter(asset=asset, effective_to__isnull=True)
    expect(row.locator("[data-testid=shared-count]")).to_contain_text(f"{len(in_folder)} / 100")
    assert {g.account_id for g in open_grants} == {a.pk for a in in_folder}
    asset.refresh_from_db()
    assert asset.scope_type == ScopeType.FOLDERS

    # Move one account out of the folder in the resource directory (R-ORG-4): its grant ends at once (R-SH-2).
    moved = sorted(in_folder, key=lambda a: a.name)[0]
    page.goto(f"/sharing/directory/?folder={folder.pk}")
    expect(page.locator("[data-testid=selected-folder]")).to_have_text(folder.name)
    move_form = page.locator("[data-testid=move-form]")
    move_form.locator(f'tr[data-account="{moved.account_id}"] input[name=accounts]').check()
    move_form.locator("#move-to").select_option(str(destination.pk))
    shot(page, "directory.png")
    move_form.get_by_role("button", name="Move", exact=True).click()
    expect(page.locator("#messages")).to_contain_text(f"Moved 1 account(s) to {destination.name}")
    expect(page.locator(f'[data-testid=move-form] tr[data-account="{moved.account_id}"]')).to_have_count(0)
    wait_for_htmx(page)
    moved.refresh_from_db()
    assert moved.folder_id == destination.pk
    ended = Grant.objects.get(asset=asset, account=moved)
    assert ended.effective_to is not None

    # The share history: the moved account has an effective-to; the others are still in force (R-SH-6, R-SH-7).
    page.goto("/sharing/assets/savings_plan/")
    expect(row.locator("[data-testid=shared-count]")).to_contain_text(f"{len(in_folder) - 1} / 100")
    row.get_by_role("link", name="History").click()
    history = page.locator("[data-testid=history]")
    expect(history).to_be_visible()
    grants = list(Grant.objects.filter(asset=asset).select_related("account"))
    expect(history.locator("tbody tr")).to_have_count(len(grants))
    for grant in grants:
        cells = history.locator("tbody tr", has_text=grant.account.account_id).locator("td")
        expect(cells.nth(1)).to_have_text(_shown_time(grant.effective_from))
        if grant.account_id == moved.pk:
            expect(cells.nth(2)).to_have_text(_shown_time(grant.effective_to))
        elif grant.effective_to is None:
            expect(cells.nth(2)).to_have_text("In force")
    shot(page, "share-history.png")
