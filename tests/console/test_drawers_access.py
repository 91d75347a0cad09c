"""Who may open each drawer, with and without HTMX (R-ORG-6): anonymous users sign in, members get 403 for
the administrator's drawers and 404 for accounts not their own, another enterprise's administrator gets 404."""

from types import SimpleNamespace

import pytest
from django.urls import reverse

from tests.factories import fund, make_account, make_enterprise, make_user

HX = {"HX-Request": "true"}
ADMIN_DRAWERS = ["credit_drawer", "transfer_drawer", "alert_drawer"]


@pytest.fixture
def world(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="Alpha"), "1000.00")
    b = make_account(enterprise=enterprise, name="Beta")
    member = make_user(account=b)
    _, other_ma, other_admin = make_enterprise(name="Globex")
    return SimpleNamespace(enterprise=enterprise, ma=ma, admin=admin, a=a, b=b, member=member,
                           other_admin=other_admin, other_ma=other_ma)


def drawer_url(name, account):
    if name == "alert_batch":
        return reverse("console:alert_batch") + f"?accounts={account.pk}"
    return reverse(f"console:{name}", args=[account.pk])


ALL_DRAWERS = ADMIN_DRAWERS + ["transfer_records_drawer", "alert_batch"]


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("name", ALL_DRAWERS)
def test_anonymous_is_sent_to_sign_in_R_ORG_6(client, world, name, htmx):
    response = client.get(drawer_url(name, world.b), headers=HX if htmx else {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("name", ADMIN_DRAWERS + ["alert_batch"])
def test_member_gets_403_for_the_administrators_drawers_R_ORG_6(client, world, name, htmx):
    client.force_login(world.member)
    for account in (world.b, world.a):  # its own account and another one of the enterprise
        assert client.get(drawer_url(name, account), headers=HX if htmx else {}).status_code == 403
        assert client.post(drawer_url(name, account), {"threshold": "1", "accounts": [account.pk]},
                           headers=HX if htmx else {}).status_code == 403


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("name", ALL_DRAWERS)
def test_admin_of_another_enterprise_gets_404_never_the_data_R_ORG_6(client, world, name, htmx):
    client.force_login(world.other_admin)
    response = client.get(drawer_url(name, world.a), headers=HX if htmx else {})
    assert response.status_code == 404
    assert b"Alpha" not in response.content


@pytest.mark.parametrize("name", ADMIN_DRAWERS + ["alert_batch"])
def test_admin_of_another_enterprise_cannot_post_R_ORG_6(client, world, name):
    client.force_login(world.other_admin)
    response = client.post(drawer_url(name, world.a), {"threshold": "5.00", "enabled": "on",
                                                       "accounts": [world.a.pk], "new_limit": "1"})
    assert response.status_code == 404
    world.a.refresh_from_db()
    assert world.a.alert_enabled is False


@pytest.mark.parametrize("name", ALL_DRAWERS)
def test_admin_gets_the_partial_with_htmx_and_the_full_page_without_R_ORG_6(client, world, name):
    client.force_login(world.admin)
    partial = client.get(drawer_url(name, world.b), headers=HX)
    assert partial.status_code == 200
    assert b'class="drawer' in partial.content
    assert b"<html" not in partial.content
    page = client.get(drawer_url(name, world.b))
    assert page.status_code == 200
    assert b"<html" in page.content and b"page-panel" in page.content and b'class="drawer' in page.content


def test_member_sees_the_transfer_records_of_its_own_account_only_R_TR_6(client, world):
    client.force_login(world.member)
    assert client.get(drawer_url("transfer_records_drawer", world.b), headers=HX).status_code == 200
    assert client.get(drawer_url("transfer_records_drawer", world.b)).status_code == 200
    assert client.get(drawer_url("transfer_records_drawer", world.a), headers=HX).status_code == 404


def test_batch_with_an_account_of_another_enterprise_is_404_R_ORG_6(client, world):
    client.force_login(world.admin)
    url = reverse("console:alert_batch") + f"?accounts={world.a.pk}&accounts={world.other_ma.pk}"
    assert client.get(url, headers=HX).status_code == 404
    response = client.post(reverse("console:alert_batch"),
                           {"accounts": [world.a.pk, world.other_ma.pk], "enabled": "on", "threshold": "10"})
    assert response.status_code == 404
    world.a.refresh_from_db()
    assert world.a.alert_enabled is False


def test_drawer_urls_refuse_other_methods(client, world):
    client.force_login(world.admin)
    assert client.delete(drawer_url("credit_drawer", world.b)).status_code == 405
    assert client.post(drawer_url("transfer_records_drawer", world.b)).status_code == 405
