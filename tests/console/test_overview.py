"""The account overview (console home): the enterprise in figures for its administrator (R-MON-3,
R-CR-3, R-AL-4), its own figures for a member user (R-ORG-6)."""

import re
from datetime import timedelta

from django.urls import reverse

from accounts.models import Bill
from accounts.selectors import today
from tests import factories
from tests.console.accounts_fixtures import acme, member, other, fast_passwords  # noqa: F401

URL = reverse("console:overview")


def figures(response):
    return dict(re.findall(r'data-figure="([a-z_]+)">([^<]+)<', response.content.decode()))


def test_anonymous_is_sent_to_sign_in_R_ORG_6(client, acme):
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = client.get(URL, **headers)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_admin_sees_the_enterprise_summary_R_MON_3_R_AL_4(client, acme):
    Bill.objects.filter(account=acme["beta"]).update(due_date=today() - timedelta(days=1))
    client.force_login(acme["admin"])
    response = client.get(URL)
    assert response.status_code == 200
    # MA 100,000 cash; Alpha 1,000; Beta 0 cash, 300 credit, 500 outstanding (overdue); Gamma 50; Delta 0
    assert figures(response) == {
        "accounts": "5",
        "available_credit": "100,850.00",
        "cash_balance": "101,050.00",
        "transfer_book_balance": "0.00",
        "credit_limit": "300.00",
        "outstanding": "500.00",
        "overdue": "500.00",
        "below_threshold": "1",
    }


def test_admin_sees_credit_control_figures_R_CR_3(client, acme):
    client.force_login(acme["admin"])
    html = client.get(URL).content.decode()
    assert "Effective" in html
    # total 10,000 - allocated 300 - overdue 0 = 9,700 maximum quota allocable
    assert re.search(r"Maximum quota allocable</strong></dt><dd><strong>9,700.00<", html)


def test_transfer_book_balance_counts_in_the_summary_R_MON_3(client, acme):
    from accounts import services

    services.transfer_create(actor=acme["admin"], payer=acme["alpha"], payee=acme["ma"], amount="100.00",
                             remark="back to MA")
    client.force_login(acme["admin"])
    got = figures(client.get(URL))
    assert got["transfer_book_balance"] == "100.00"
    assert got["cash_balance"] == "101,050.00"  # a transfer moves money, the total stays


def test_member_sees_only_its_own_figures_R_ORG_6(client, acme, member):
    client.force_login(member)
    response = client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert figures(response) == {
        "available_credit": "1,000.00", "cash_balance": "1,000.00", "transfer_book_balance": "0.00",
        "credit_limit": "0.00", "outstanding": "0.00", "overdue": "0.00", "coupons": "0",
        "transferable_amount": "1,000.00",
    }
    assert "100,850.00" not in html and "Beta Payments" not in html and "Maximum quota allocable" not in html
    assert "Member user" in html


def test_admin_of_another_enterprise_sees_only_its_own_R_ORG_6(client, acme, other):
    client.force_login(other["admin"])
    got = figures(client.get(URL))
    assert got["accounts"] == "2" and got["cash_balance"] == "10.00"


def test_account_manager_without_account_gets_a_pointer_to_the_back_office(client, acme):
    client.force_login(factories.make_manager())
    response = client.get(URL)
    assert response.status_code == 200 and b"back office" in response.content


def test_frame_shows_role_currency_and_navigation(client, acme):
    client.force_login(acme["admin"])
    html = client.get(URL).content.decode()
    assert "Enterprise administrator" in html and "Currency CNY" in html
    for name in ("overview", "accounts", "transfer_records", "credit_control", "contracts", "messages", "audit_log"):
        assert f'href="{reverse("console:" + name)}"' in html
    assert 'class="active">Account overview' in html
