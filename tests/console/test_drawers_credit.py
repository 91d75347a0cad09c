"""The Credit Quota Settings drawer (R-CR-1, R-CR-3 to R-CR-7) through real requests."""

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.urls import reverse

from accounts import services
from accounts import messages
from accounts.models import CreditChangeRecord
from tests.factories import effective_contract, fund, make_account, make_user, spend

HX = {"HX-Request": "true"}


@pytest.fixture
def world(ent):
    enterprise, ma, admin = ent
    b = fund(make_account(enterprise=enterprise, name="Beta"), "200.00")
    return SimpleNamespace(enterprise=enterprise, ma=ma, admin=admin, b=b, url=reverse("console:credit_drawer",
                                                                                         args=[b.pk]))


def open_form(client, url):
    """GET the drawer and read the idempotency key it generated."""
    response = client.get(url, headers=HX)
    key = response.context["form"].initial["idempotency_key"]
    return response, key


def test_shows_maximum_quota_allocable_current_limit_available_and_range_R_CR_3_R_CR_4_R_CR_5(client, world):
    effective_contract(world.enterprise, world.admin, "10000.00")
    services.credit_limit_set(actor=world.admin, account=world.b, new_limit="1000.00")
    other = make_account(enterprise=world.enterprise)
    spend(other, "300.00", at=None)  # a bill, not overdue yet: no effect on the allocable amount
    client.force_login(world.admin)
    response, key = open_form(client, world.url)
    figures = response.context["figures"]
    # Maximum quota allocable = 10,000 - 1,000 allocated - 0 overdue = 9,000; highest = 1,000 + 9,000.
    assert figures["maximum_quota_allocable"] == Decimal("9000.00")
    assert figures["lowest_credit_limit"] == Decimal("0.00")  # 200 cash already keeps available credit > 0
    assert figures["highest_credit_limit"] == Decimal("10000.00")
    html = response.content.decode()
    assert "9,000.00" in html and "1,000.00" in html and "1,200.00" in html  # allocable, limit, available quota
    assert 'data-figure="highest_credit_limit">10,000.00' in html
    assert 'name="idempotency_key"' in html and len(key) == 32


def test_disabled_with_reason_and_link_while_the_contract_is_pending_R_CR_1(client, world):
    services.credit_contract_grant(actor=None, enterprise=world.enterprise, total_credit_limit="5000.00")
    client.force_login(world.admin)
    html = client.get(world.url, headers=HX).content.decode()
    assert messages.MSG_CONTRACT_PENDING in html.replace("&#x27;", "'")
    assert reverse("console:contracts") in html
    assert "<fieldset class=\"plain\" disabled>" in html
    response = client.post(world.url, {"new_limit": "100.00", "idempotency_key": "k-pending"}, headers=HX)
    assert response.status_code == 200
    assert "pending confirmation" in response.content.decode()
    world.b.refresh_from_db()
    assert world.b.credit_limit == Decimal("0.00")


def test_disabled_for_pay_on_behalf_says_contact_your_business_manager_R_CR_6(client, world):
    effective_contract(world.enterprise, world.admin, "5000.00")
    services.account_flags_set(actor=None, account=world.b, pay_on_behalf=True)
    client.force_login(world.admin)
    html = client.get(world.url).content.decode()
    assert "Contact your business manager" in html
    assert 'data-testid="credit-blocker"' in html


def test_htmx_success_sets_the_limit_closes_the_drawer_and_triggers_refresh_R_CR_4_R_CR_7(client, world):
    effective_contract(world.enterprise, world.admin, "5000.00")
    client.force_login(world.admin)
    _, key = open_form(client, world.url)
    response = client.post(world.url, {"new_limit": "1,500.00", "reason": "Q3 budget", "idempotency_key": key},
                           headers=HX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "accountChanged"
    html = response.content.decode()
    assert 'id="messages"' in html and 'hx-swap-oob="true"' in html
    assert "changed from 0.00 to 1,500.00" in html
    assert 'class="drawer' not in html
    world.b.refresh_from_db()
    assert world.b.credit_limit == Decimal("1500.00")
    assert world.b.available_credit == Decimal("1700.00")
    record = CreditChangeRecord.objects.get(account=world.b)
    assert (record.old_value, record.new_value, record.reason, record.actor) == (
        Decimal("0.00"), Decimal("1500.00"), "Q3 budget", world.admin)


def test_without_htmx_success_redirects_303_to_next_with_a_message_R_CR_4(client, world):
    effective_contract(world.enterprise, world.admin, "5000.00")
    client.force_login(world.admin)
    response = client.post(world.url, {"new_limit": "100.00", "idempotency_key": "k-plain",
                                       "next": "/accounts/?q=Beta"})
    assert response.status_code == 303
    assert response["Location"] == "/accounts/?q=Beta"
    response = client.post(world.url, {"new_limit": "200.00", "idempotency_key": "k-plain-2",
                                       "next": "https://evil.example/"})
    assert response["Location"] == reverse("console:accounts")
    world.b.refresh_from_db()
    assert world.b.credit_limit == Decimal("200.00")


def test_increase_over_the_maximum_quota_allocable_is_refused_at_the_field_R_CR_4(client, world):
    effective_contract(world.enterprise, world.admin, "1000.00")
    client.force_login(world.admin)
    for headers in (HX, {}):
        response = client.post(world.url, {"new_limit": "1000.01", "idempotency_key": "k-over"}, headers=headers)
        assert response.status_code == 200
        errors = response.context["form"].errors["new_limit"]
        assert errors == [messages.MSG_OVER_ALLOCABLE.format(allocable="1,000.00", highest="1,000.00",
                                                             amount="1,000.01")]
        assert "data-field-error=\"new_limit\"" in response.content.decode()
    world.b.refresh_from_db()
    assert world.b.credit_limit == Decimal("0.00")
    assert not CreditChangeRecord.objects.filter(account=world.b).exists()


def test_decrease_that_would_leave_no_available_credit_is_refused_with_the_lowest_limit_R_CR_5(client, world):
    effective_contract(world.enterprise, world.admin, "1000.00")
    services.credit_limit_set(actor=world.admin, account=world.b, new_limit="500.00")
    spend(world.b, "600.00")  # cash 200 spent, outstanding 400: available = 0 + 500 - 400 = 100
    client.force_login(world.admin)
    response = client.post(world.url, {"new_limit": "400.00", "idempotency_key": "k-low"}, headers=HX)
    assert response.status_code == 200
    assert "The lowest credit limit allowed is 400.01" in response.context["form"].errors["new_limit"][0]
    world.b.refresh_from_db()
    assert world.b.credit_limit == Decimal("500.00")


@pytest.mark.parametrize("raw", ["", "abc", "-5", "1.234", "1e3", "NaN", "１２"])
def test_bad_amount_is_refused_at_the_field_and_changes_nothing_R_MON_1(client, world, raw):
    effective_contract(world.enterprise, world.admin, "1000.00")
    client.force_login(world.admin)
    response = client.post(world.url, {"new_limit": raw, "idempotency_key": "k-bad"}, headers=HX)
    assert response.status_code == 200
    assert response.context["form"].errors["new_limit"]
    assert "HX-Trigger" not in response
    world.b.refresh_from_db()
    assert world.b.credit_limit == Decimal("0.00")


def test_a_double_submit_with_the_same_key_changes_the_limit_once_R_TR_7(client, world):
    effective_contract(world.enterprise, world.admin, "1000.00")
    client.force_login(world.admin)
    _, key = open_form(client, world.url)
    first = client.post(world.url, {"new_limit": "300.00", "idempotency_key": key}, headers=HX)
    second = client.post(world.url, {"new_limit": "300.00", "idempotency_key": key}, headers=HX)
    assert first["HX-Trigger"] == second["HX-Trigger"] == "accountChanged"
    assert CreditChangeRecord.objects.filter(account=world.b).count() == 1


def test_member_post_is_refused_and_changes_nothing_R_ORG_6(client, world):
    effective_contract(world.enterprise, world.admin, "1000.00")
    client.force_login(make_user(account=world.b))
    response = client.post(world.url, {"new_limit": "300.00", "idempotency_key": "k-member"}, headers=HX)
    assert response.status_code == 403
    world.b.refresh_from_db()
    assert world.b.credit_limit == Decimal("0.00")
