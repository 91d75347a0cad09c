"""The pages of part B: Contracts (R-CR-1), Credit control management (R-CR-3, R-CR-7), Transfer records
(R-TR-6), Messages (R-AL-3, R-NT-1) and Audit log (R-AU-1), for every role (R-ORG-6)."""

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts import messages
from accounts.models import CreditChangeRecord, CreditContract
from core.models import AuditEvent, Message
from tests.factories import effective_contract, fund, make_account, make_enterprise, make_user, spend

HX = {"HX-Request": "true"}
PAGES = ["transfer_records", "credit_control", "contracts", "messages", "audit_log"]


@pytest.fixture
def world(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="Alpha"), "1000.00")
    b = make_account(enterprise=enterprise, name="Beta")
    member = make_user(account=b)
    other_enterprise, other_ma, other_admin = make_enterprise(name="Globex")
    fund(other_ma, "10.00")
    return SimpleNamespace(enterprise=enterprise, ma=ma, admin=admin, a=a, b=b, member=member,
                           other_enterprise=other_enterprise, other_ma=other_ma, other_admin=other_admin)


def url(name):
    return reverse(f"console:{name}")


# --- Roles ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("name", PAGES)
def test_anonymous_is_sent_to_sign_in_R_ORG_6(client, world, name, htmx):
    response = client.get(url(name), headers=HX if htmx else {})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("name", PAGES)
def test_admin_sees_every_page_R_ORG_6(client, world, name, htmx):
    client.force_login(world.admin)
    response = client.get(url(name), headers=HX if htmx else {})
    assert response.status_code == 200
    assert b"<html" in response.content


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("name", ["transfer_records", "credit_control", "contracts", "messages"])
def test_member_sees_the_pages_of_its_own_account_R_ORG_6(client, world, name, htmx):
    client.force_login(world.member)
    assert client.get(url(name), headers=HX if htmx else {}).status_code == 200


@pytest.mark.parametrize("htmx", [False, True])
def test_member_gets_403_for_the_audit_log_R_AU_1(client, world, htmx):
    client.force_login(world.member)
    assert client.get(url("audit_log"), headers=HX if htmx else {}).status_code == 403


@pytest.mark.parametrize("name", ["transfer_records", "credit_control", "contracts", "messages"])
def test_navigation_shows_the_audit_log_to_the_administrator_only_R_AU_1(client, world, name):
    """A member user's navigation has no link to the audit log it would be refused (found in Chromium)."""
    audit_link = f'href="{url("audit_log")}"'.encode()
    client.force_login(world.member)
    assert audit_link not in client.get(url(name)).content
    client.force_login(world.admin)
    assert audit_link in client.get(url(name)).content


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("name", PAGES)
def test_admin_of_another_enterprise_never_sees_this_enterprises_data_R_ORG_6(client, world, name, htmx):
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="5.00", remark="secret move")
    effective_contract(world.enterprise, world.admin, "7777.00")
    services.credit_limit_set(actor=world.admin, account=world.a, new_limit="123.00")
    client.force_login(world.other_admin)
    response = client.get(url(name), headers=HX if htmx else {})
    assert response.status_code == 200
    html = response.content.decode()
    for secret in ("Alpha", "Beta", "secret move", "7,777.00", world.a.account_id):
        assert secret not in html


def test_filtering_by_an_account_of_another_enterprise_is_404_R_ORG_6(client, world):
    client.force_login(world.other_admin)
    assert client.get(url("transfer_records"), {"account": world.a.pk}).status_code == 404
    assert client.get(url("credit_control"), {"account": world.a.pk}).status_code == 404


# --- Contracts (R-CR-1) ------------------------------------------------------------------------

@pytest.fixture
def pending(world):
    return services.credit_contract_grant(actor=None, enterprise=world.enterprise, total_credit_limit="50000.00")


def test_contract_is_listed_with_number_total_status_and_confirm_dialog_for_the_admin_R_CR_1(client, world, pending):
    client.force_login(world.admin)
    html = client.get(url("contracts")).content.decode()
    assert pending.contract_number in html and "50,000.00" in html and "Pending confirmation" in html
    assert f'<dialog id="confirm-{pending.pk}"' in html
    assert f'href="?confirm={pending.pk}" data-dialog-open="confirm-{pending.pk}"' in html


def test_confirmation_step_without_javascript_R_CR_1(client, world, pending):
    client.force_login(world.admin)
    response = client.get(url("contracts"), {"confirm": pending.pk})
    assert response.context["confirming"] == pending
    assert 'data-testid="confirm-step"' in response.content.decode()


def test_admin_of_the_management_account_confirms_the_pending_contract_R_CR_1(client, world, pending):
    client.force_login(world.admin)
    response = client.post(url("contracts"), {"contract": pending.pk})
    assert response.status_code == 303 and response["Location"] == url("contracts")
    pending.refresh_from_db()
    assert pending.status == CreditContract.Status.EFFECTIVE and pending.confirmed_by == world.admin
    change = CreditChangeRecord.objects.get(enterprise=world.enterprise, account=None)
    assert (change.old_value, change.new_value) == (Decimal("0.00"), Decimal("50000.00"))
    html = client.get(response["Location"]).content.decode()
    assert "is confirmed and effective" in html and "Effective" in html and world.admin.get_username() in html
    assert "<dialog" not in html
    # Confirming again says so and changes nothing.
    again = client.post(url("contracts"), {"contract": pending.pk}, follow=True)
    assert messages.MSG_CONTRACT_NOT_PENDING in again.content.decode()
    assert CreditChangeRecord.objects.filter(enterprise=world.enterprise).count() == 1


def test_member_sees_the_contract_read_only_and_cannot_confirm_R_CR_1(client, world, pending):
    client.force_login(world.member)
    html = client.get(url("contracts")).content.decode()
    assert pending.contract_number in html and "<dialog" not in html and "read-only" in html
    assert client.post(url("contracts"), {"contract": pending.pk}).status_code == 403
    pending.refresh_from_db()
    assert pending.status == CreditContract.Status.PENDING


def test_admin_of_another_enterprise_cannot_confirm_this_contract_R_CR_1(client, world, pending):
    client.force_login(world.other_admin)
    assert client.post(url("contracts"), {"contract": pending.pk}).status_code == 404
    pending.refresh_from_db()
    assert pending.status == CreditContract.Status.PENDING


# --- Credit control management (R-CR-3, R-CR-7) --------------------------------------------------

def test_summary_shows_total_allocated_overdue_and_maximum_quota_allocable_R_CR_3(client, world):
    effective_contract(world.enterprise, world.admin, "10000.00")
    services.credit_limit_set(actor=world.admin, account=world.a, new_limit="3000.00")
    spend(world.b, "200.00", at=timezone.now() - timedelta(days=30))  # overdue 200.00
    client.force_login(world.admin)
    response = client.get(url("credit_control"))
    assert response.context["summary"] == {"total_credit_limit": Decimal("10000.00"), "allocated": Decimal("3000.00"),
                                           "overdue": Decimal("200.00"),
                                           "maximum_quota_allocable": Decimal("6800.00")}
    html = response.content.decode()
    assert 'data-figure="maximum_quota_allocable">6,800.00' in html
    assert 'data-figure="overdue">200.00' in html


def test_pending_contract_is_explained_on_the_credit_page_R_CR_1(client, world):
    services.credit_contract_grant(actor=None, enterprise=world.enterprise, total_credit_limit="100.00")
    client.force_login(world.admin)
    html = client.get(url("credit_control")).content.decode()
    assert "pending your confirmation" in html and reverse("console:contracts") in html


def test_change_records_filter_by_account_search_and_date_R_CR_7(client, world):
    effective_contract(world.enterprise, world.admin, "10000.00")
    services.credit_limit_set(actor=world.admin, account=world.a, new_limit="300.00", reason="alpha up")
    services.credit_limit_set(actor=world.admin, account=world.b, new_limit="200.00", reason="beta up")
    old = CreditChangeRecord.objects.get(reason="alpha up")
    CreditChangeRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=5))
    client.force_login(world.admin)

    def reasons(**params):
        return [r["record"].reason for r in client.get(url("credit_control"), params).context["rows"]]

    assert reasons() == ["beta up", "Credit control contract confirmed", "alpha up"]
    assert reasons(account=world.a.pk) == ["alpha up"]
    assert reasons(q="Bet") == ["beta up"]
    assert reasons(q=world.a.account_id[:12]) == ["alpha up"]
    day = (timezone.localdate() - timedelta(days=5)).isoformat()
    assert reasons(date_from=day, date_to=day) == ["alpha up"]
    html = client.get(url("credit_control")).content.decode()
    assert "+300.00" in html and "Enterprise total credit limit" in html and "alpha up" in html


def test_change_records_are_paginated_R_CR_7(client, world):
    effective_contract(world.enterprise, world.admin, "100000.00")
    for i in range(1, 27):
        services.credit_limit_set(actor=world.admin, account=world.a, new_limit=f"{i}.00")
    client.force_login(world.admin)
    first = client.get(url("credit_control"))
    assert len(first.context["rows"]) == 25 and first.context["page"].paginator.count == 27
    assert len(client.get(url("credit_control"), {"page": 2}).context["rows"]) == 2


def test_member_sees_only_its_own_accounts_credit_records_R_CR_7_R_ORG_6(client, world):
    effective_contract(world.enterprise, world.admin, "10000.00")
    services.credit_limit_set(actor=world.admin, account=world.a, new_limit="300.00", reason="alpha up")
    services.credit_limit_set(actor=world.admin, account=world.b, new_limit="200.00", reason="beta up")
    client.force_login(world.member)
    response = client.get(url("credit_control"))
    assert [r["record"].reason for r in response.context["rows"]] == ["beta up"]
    html = response.content.decode()
    assert "alpha up" not in html and "Maximum quota allocable" not in html
    assert 'data-figure="credit_limit">200.00' in html


# --- Transfer records page (R-TR-6) ---------------------------------------------------------------

def test_enterprise_transfer_records_filter_by_type_account_and_date_R_TR_6(client, world):
    c = make_account(enterprise=world.enterprise, name="Gamma")
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="40.00", remark="a to b")
    services.transfer_create(actor=world.admin, payer=world.a, payee=c, amount="30.00", remark="a to c")
    services.withdrawal_create(actor=world.admin, source=world.a, target=world.b, amount="10.00", remark="b back")
    client.force_login(world.admin)

    def remarks(**params):
        return [r.remark for r in client.get(url("transfer_records"), params).context["page"]]

    assert remarks() == ["b back", "a to c", "a to b"]
    assert remarks(kind="withdrawal") == ["b back"]
    assert remarks(account=c.pk) == ["a to c"]
    assert remarks(q="Gam") == ["a to c"]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert remarks(date_from=tomorrow) == []
    html = client.get(url("transfer_records")).content.decode()
    assert "40.00" in html and "Withdraw" in html and world.admin.get_username() in html


def test_member_sees_the_transfer_records_of_its_own_account_only_R_TR_6(client, world):
    c = make_account(enterprise=world.enterprise, name="Gamma")
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="40.00", remark="to beta")
    services.transfer_create(actor=world.admin, payer=world.a, payee=c, amount="30.00", remark="to gamma")
    client.force_login(world.member)
    response = client.get(url("transfer_records"), {"account": c.pk})  # the account filter is the admin's only
    assert [r.remark for r in response.context["page"]] == ["to beta"]
    assert "to gamma" not in response.content.decode()


# --- Messages ----------------------------------------------------------------------------------

def _message(account, title, *, read=False, minutes_ago=0):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return Message.objects.create(account=account, kind="note", title=title, body=f"{title} body", created_at=at,
                                  read_at=at if read else None)


def test_messages_newest_first_unread_highlighted_and_counted_in_the_nav_R_NT_1(client, world):
    _message(world.b, "Older", read=True, minutes_ago=10)
    _message(world.b, "Newer", minutes_ago=1)
    _message(world.a, "Not yours")
    client.force_login(world.member)
    response = client.get(url("messages"))
    assert [m.title for m in response.context["page"]] == ["Newer", "Older"]
    html = response.content.decode()
    assert "Not yours" not in html
    assert 'class="message unread"' in html
    assert 'data-testid="unread">1<' in html  # the badge in the navigation


def test_low_balance_alert_arrives_as_a_message_R_AL_3(client, world):
    services.alert_set(actor=world.admin, account=world.b, enabled=True, threshold="100.00")
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="50.00", remark="top")
    client.force_login(world.member)
    titles = [m.title for m in client.get(url("messages")).context["page"]]
    assert "Low balance alert for Beta" in titles


def test_mark_one_and_mark_all_read(client, world):
    first = _message(world.b, "One")
    _message(world.b, "Two")
    foreign = _message(world.a, "Foreign")
    client.force_login(world.member)
    response = client.post(url("messages"), {"message": first.pk, "return_query": "unread=1"})
    assert response.status_code == 303 and response["Location"] == url("messages") + "?unread=1"
    first.refresh_from_db()
    assert first.read_at is not None
    assert client.post(url("messages"), {"message": foreign.pk}).status_code == 404
    foreign.refresh_from_db()
    assert foreign.read_at is None
    client.post(url("messages"), {"action": "read_all"})
    assert not Message.objects.filter(account=world.b, read_at__isnull=True).exists()
    assert Message.objects.filter(account=world.a, read_at__isnull=True).exists()
    assert [m.title for m in client.get(url("messages"), {"unread": "1"}).context["page"]] == []


# --- Audit log (R-AU-1) -------------------------------------------------------------------------

def test_audit_log_shows_who_action_object_before_after_ip_and_when_R_AU_1(client, world):
    client.force_login(world.admin)
    client.post(reverse("console:alert_drawer", args=[world.b.pk]), {"enabled": "on", "threshold": "20.00"},
                REMOTE_ADDR="203.0.113.7")
    response = client.get(url("audit_log"), {"action": "alert_set"})
    rows = response.context["rows"]
    assert len(rows) == 1
    event = rows[0]["event"]
    assert (event.actor, event.ip_address) == (world.admin, "203.0.113.7")
    assert {"field": "alert enabled", "before": "No", "after": "Yes"} in rows[0]["changes"]
    assert {"field": "alert threshold", "before": "0.00", "after": "20.00"} in rows[0]["changes"]
    html = response.content.decode()
    assert "203.0.113.7" in html and "Beta" in html and "20.00" in html and world.admin.get_username() in html


def test_audit_log_filters_by_action_and_date_and_hides_other_enterprises_R_AU_1(client, world):
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="5.00", remark="x")
    AuditEvent.objects.filter(action="top_up").update(created_at=timezone.now() - timedelta(days=3))
    services.top_up(actor=None, account=world.other_ma, amount="1.00")
    client.force_login(world.admin)
    events = [r["event"] for r in client.get(url("audit_log")).context["rows"]]
    assert {e.enterprise_id for e in events} == {world.enterprise.pk}
    assert [r["event"].action for r in client.get(url("audit_log"), {"action": "transfer"}).context["rows"]] == [
        "transfer"]
    day = (timezone.localdate() - timedelta(days=3)).isoformat()
    assert {r["event"].action for r in client.get(url("audit_log"), {"date_from": day, "date_to": day})
            .context["rows"]} == {"top_up"}
