"""The Transfer records drawer (R-TR-6) and the Low balance alert drawers, one and batch (R-AL-1, R-AL-2)."""

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts import messages
from accounts.models import Account, TransferRecord
from core.models import AuditEvent
from tests.factories import fund, make_account, make_user

HX = {"HX-Request": "true"}


@pytest.fixture
def world(ent, client):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="Alpha"), "1000.00")
    b = make_account(enterprise=enterprise, name="Beta")
    c = make_account(enterprise=enterprise, name="Gamma")
    client.force_login(admin)
    return SimpleNamespace(enterprise=enterprise, ma=ma, admin=admin, a=a, b=b, c=c)


# --- Transfer records (R-TR-6) -------------------------------------------------------------------

def test_records_newest_first_with_counterpart_type_signed_amount_remark_and_who_R_TR_6(client, world):
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="400.00", remark="first")
    services.withdrawal_create(actor=world.admin, source=world.a, target=world.b, amount="150.00", remark="second")
    response = client.get(reverse("console:transfer_records_drawer", args=[world.b.pk]), headers=HX)
    rows = response.context["rows"]
    assert [r["record"].remark for r in rows] == ["second", "first"]
    assert [r["outgoing"] for r in rows] == [True, False]
    assert all(r["counterpart"] == world.a for r in rows)
    html = response.content.decode()
    assert "-150.00" in html and "+400.00" in html and "Withdraw" in html and "Transfer" in html
    assert world.admin.get_username() in html
    assert html.index("second") < html.index("first")


def test_records_filter_by_type_and_date_R_TR_6(client, world):
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="400.00", remark="in")
    services.withdrawal_create(actor=world.admin, source=world.a, target=world.b, amount="100.00", remark="back")
    old = TransferRecord.objects.get(remark="in")
    TransferRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    url = reverse("console:transfer_records_drawer", args=[world.b.pk])
    rows = client.get(url, {"kind": "withdrawal"}, headers=HX).context["rows"]
    assert [r["record"].remark for r in rows] == ["back"]
    day = (timezone.localdate() - timedelta(days=10)).isoformat()
    rows = client.get(url, {"date_from": day, "date_to": day}, headers=HX).context["rows"]
    assert [r["record"].remark for r in rows] == ["in"]
    response = client.get(url, {"date_from": "2026-02-10", "date_to": "2026-02-01"}, headers=HX)
    assert "date_to" in response.context["form"].errors


def test_records_are_paginated_R_TR_6(client, world):
    for i in range(12):
        services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="1.00", remark=f"r{i}")
    url = reverse("console:transfer_records_drawer", args=[world.b.pk])
    first = client.get(url, headers=HX)
    assert len(first.context["rows"]) == 10
    assert 'hx-get="' + url + '?page=2"' in first.content.decode()
    second = client.get(url, {"page": 2}, headers=HX)
    assert [r["record"].remark for r in second.context["rows"]] == ["r1", "r0"]


def test_member_sees_its_own_records_R_TR_6(client, world):
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="5.00", remark="to beta")
    client.force_login(make_user(account=world.b))
    response = client.get(reverse("console:transfer_records_drawer", args=[world.b.pk]))
    assert response.status_code == 200 and "to beta" in response.content.decode()


# --- One account's alert (R-AL-1) ----------------------------------------------------------------

def test_alert_drawer_shows_the_current_setting_R_AL_1(client, world):
    services.alert_set(actor=world.admin, account=world.b, enabled=True, threshold="250.00")
    response = client.get(reverse("console:alert_drawer", args=[world.b.pk]), headers=HX)
    form = response.context["form"]
    assert form.initial == {"enabled": True, "threshold": Decimal("250.00")}
    assert 'checked' in str(form["enabled"]) and 'value="250.00"' in response.content.decode()


def test_alert_set_closes_the_drawer_and_refreshes_the_table_R_AL_1(client, world):
    url = reverse("console:alert_drawer", args=[world.b.pk])
    response = client.post(url, {"enabled": "on", "threshold": "500.00"}, headers=HX)
    assert response["HX-Trigger"] == "accountChanged"
    assert "Low balance alert turned on for Beta" in response.content.decode()
    assert 'hx-swap-oob="true"' in response.content.decode()
    world.b.refresh_from_db()
    assert (world.b.alert_enabled, world.b.alert_threshold) == (True, Decimal("500.00"))
    response = client.post(url, {"threshold": "500.00"})  # switch off, without HTMX
    assert response.status_code == 303
    world.b.refresh_from_db()
    assert world.b.alert_enabled is False


@pytest.mark.parametrize("raw", ["", "-1", "abc", "0.001"])
def test_alert_bad_threshold_is_refused_at_the_field_R_AL_1(client, world, raw):
    response = client.post(reverse("console:alert_drawer", args=[world.b.pk]), {"enabled": "on", "threshold": raw},
                           headers=HX)
    assert response.status_code == 200
    assert response.context["form"].errors["threshold"]
    assert "HX-Trigger" not in response
    world.b.refresh_from_db()
    assert world.b.alert_enabled is False


# --- Batch (R-AL-2) ----------------------------------------------------------------------------

def test_batch_lists_the_selected_accounts_R_UAM_3(client, world):
    url = reverse("console:alert_batch") + f"?accounts={world.a.pk}&accounts={world.c.pk}"
    response = client.get(url, headers=HX)
    assert [a.name for a in response.context["accounts"]] == ["Alpha", "Gamma"]
    html = response.content.decode()
    assert "Beta" not in html and 'data-testid="batch-count">2<' in html


def test_batch_sets_every_selected_account_R_AL_2(client, world):
    pks = [world.a.pk, world.b.pk, world.c.pk]
    response = client.post(reverse("console:alert_batch"), {"accounts": pks, "enabled": "on", "threshold": "75.50"},
                           headers=HX)
    assert response["HX-Trigger"] == "accountChanged"
    assert "turned on for 3 accounts" in response.content.decode()
    rows = Account.objects.filter(pk__in=pks)
    assert {(r.alert_enabled, r.alert_threshold) for r in rows} == {(True, Decimal("75.50"))}
    assert AuditEvent.objects.filter(action="alert_set").count() == 3


def test_batch_with_a_bad_threshold_changes_none_R_AL_2(client, world):
    pks = [world.a.pk, world.b.pk]
    response = client.post(reverse("console:alert_batch"), {"accounts": pks, "enabled": "on", "threshold": "-3"},
                           headers=HX)
    assert response.status_code == 200
    assert response.context["form"].errors["threshold"]
    assert not Account.objects.filter(pk__in=pks, alert_enabled=True).exists()


def test_batch_without_accounts_says_select_at_least_one_R_AL_2(client, world):
    html = client.get(reverse("console:alert_batch"), headers=HX).content.decode()
    assert 'data-testid="no-selection"' in html
    response = client.post(reverse("console:alert_batch"), {"enabled": "on", "threshold": "1"}, headers=HX)
    assert response.context["form"].errors["accounts"] == [messages.MSG_NO_ACCOUNTS]


def test_batch_without_htmx_redirects_R_AL_2(client, world):
    response = client.post(reverse("console:alert_batch"),
                           {"accounts": [world.c.pk], "enabled": "on", "threshold": "9", "next": "/accounts/?alert=on"})
    assert response.status_code == 303 and response["Location"] == "/accounts/?alert=on"
    world.c.refresh_from_db()
    assert world.c.alert_enabled is True


def test_batch_with_a_non_numeric_account_is_404(client, world):
    assert client.get(reverse("console:alert_batch") + "?accounts=x", headers=HX).status_code == 404
