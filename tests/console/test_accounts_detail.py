"""The account details page (R-UAM-5): figures, folder, flags and blockers, alerts, records; per role."""

import re
from datetime import timedelta
from decimal import Decimal

from django.urls import reverse

from accounts import services
from accounts.models import AlertEvent, Bill
from accounts.selectors import today
from tests import factories
from tests.console.accounts_fixtures import acme, member, other, fast_passwords  # noqa: F401

HX_FIGURES = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "account-figures"}


def url(account):
    return reverse("console:account_detail", args=[account.pk])


def figure(html, label):
    match = re.search(r'<div class="label">%s</div><div class="value[^"]*">([^<]+)</div>' % label, html)
    return match.group(1) if match else None


def test_anonymous_is_sent_to_sign_in_R_ORG_6(client, acme):
    for headers in ({}, HX_FIGURES):
        response = client.get(url(acme["alpha"]), **headers)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_admin_of_another_enterprise_gets_404_R_ORG_6(client, acme, other):
    client.force_login(other["admin"])
    for account in (acme["alpha"], acme["ma"]):
        for headers in ({}, HX_FIGURES):
            response = client.get(url(account), **headers)
            assert response.status_code == 404
            assert b"Alpha Web" not in response.content


def test_member_sees_its_own_account_and_404_for_others_R_ORG_6(client, acme, member):
    client.force_login(member)
    response = client.get(url(acme["alpha"]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Alpha Web" in html
    assert reverse("console:credit_drawer", args=[acme["alpha"].pk]) not in html  # no admin actions
    assert reverse("console:transfer_drawer", args=[acme["alpha"].pk]) not in html
    for account in (acme["beta"], acme["ma"]):
        assert client.get(url(account)).status_code == 404
        assert client.get(url(account), **HX_FIGURES).status_code == 404


def test_unknown_account_is_404(client, acme):
    client.force_login(acme["admin"])
    assert client.get(reverse("console:account_detail", args=[999999])).status_code == 404


def test_admin_sees_figures_of_the_account_R_UAM_5_R_MON_3(client, acme):
    client.force_login(acme["admin"])
    Bill.objects.filter(account=acme["beta"]).update(due_date=today() - timedelta(days=2))
    html = client.get(url(acme["beta"])).content.decode()
    assert figure(html, "Available credit") == "-200.00"
    assert figure(html, "Cash balance") == "0.00"
    assert figure(html, "Transfer book balance") == "0.00"
    assert figure(html, "Credit limit") == "300.00"
    assert figure(html, "Outstanding") == "500.00"
    assert figure(html, "Overdue") == "500.00"
    assert figure(html, "Coupons") == "0"
    assert figure(html, "Transferable amount") == "0.00"
    assert "Acme" in html and "Engineering / Backend" in html


def test_transferable_amount_shown_R_TR_2(client, acme):
    client.force_login(acme["admin"])
    html = client.get(url(acme["alpha"])).content.decode()
    assert figure(html, "Transferable amount") == "1,000.00"


def test_blockers_and_flags_with_reasons_R_CR_6_R_ORG_5(client, acme):
    client.force_login(acme["admin"])
    gamma = client.get(url(acme["gamma"])).content.decode()
    assert "Risk flag" in gamma and "Credit limit and transfer:" in gamma
    assert "significant receivables with long-overdue history" in gamma
    assert re.search(r'<button type="button" class="btn" disabled title="[^"]*R-CR-6[^"]*">Transfer</button>', gamma)
    delta = client.get(url(acme["delta"])).content.decode()
    assert "Different company" in delta and "verified as a different company" in delta
    alpha = client.get(url(acme["alpha"])).content.decode()
    assert 'data-testid="blocker"' not in alpha
    assert reverse("console:credit_drawer", args=[acme["alpha"].pk]) in alpha


def test_alert_settings_and_history_R_UAM_5_R_AL_3(client, acme):
    alpha = acme["alpha"]
    factories.spend(alpha, "600.00")  # 1,000 -> 400, below the 500 threshold: one alert (R-AL-3)
    assert AlertEvent.objects.filter(account=alpha).count() == 1
    client.force_login(acme["admin"])
    html = client.get(url(alpha)).content.decode()
    section = html[html.index('id="h-alert"'):html.index('id="h-transfers"')]
    assert ">On</span>" in section and "500.00" in section and "Below threshold" in section
    assert "Low balance alert" in section and "400.00" in section


def test_transfer_records_credit_changes_charges_top_ups_and_bills_R_UAM_5(client, acme):
    admin, alpha, beta = acme["admin"], acme["alpha"], acme["beta"]
    services.transfer_create(actor=admin, payer=alpha, payee=beta, amount="120.00", remark="Team budget")
    client.force_login(admin)
    html = client.get(url(beta)).content.decode()
    transfers = html[html.index('id="h-transfers"'):html.index('id="h-credit"')]
    assert "Team budget" in transfers and "+120.00" in transfers and "Alpha Web" in transfers
    assert reverse("console:transfer_records_drawer", args=[beta.pk]) in transfers
    credit = html[html.index('id="h-credit"'):html.index('id="h-charges"')]
    assert "300.00" in credit and "+300.00" in credit
    charges = html[html.index('id="h-charges"'):html.index('id="h-topups"')]
    assert "700.00" in charges and "500.00" in charges
    bills = html[html.index('id="h-bills"'):]
    assert "Unpaid" in bills and "500.00" in bills
    sent = client.get(url(alpha)).content.decode()
    assert "−120.00" in sent and "Beta Payments" in sent


def test_only_latest_20_transfer_records_R_TR_6(client, acme):
    admin, alpha, beta = acme["admin"], acme["alpha"], acme["beta"]
    for i in range(22):
        services.transfer_create(actor=admin, payer=alpha, payee=beta, amount="1.00", remark=f"r{i:02d}")
    client.force_login(admin)
    html = client.get(url(alpha)).content.decode()
    assert "r21" in html and "r02" in html and "r01<" not in html and "Showing the latest 20." in html


def test_details_page_shows_owned_and_received_assets_R_UAM_5(client, acme):
    """The sharing fragment is part of the details page: its owned and received assets sections render."""
    from datetime import timedelta

    from django.utils import timezone

    from sharing import services as sharing_services
    from sharing.models import AssetType

    now = timezone.now()
    asset = sharing_services.asset_provision(actor=None, owner=acme["alpha"], asset_type=AssetType.COUPON,
                                     name="Launch coupon 42", valid_from=now - timedelta(days=1),
                                     valid_to=now + timedelta(days=30), face_value="200.00", products=[])
    client.force_login(acme["admin"])
    page = client.get(url(acme["alpha"])).content.decode()
    assert "Owned assets" in page and "Received assets" in page
    assert asset.asset_id in page and "Launch coupon 42" in page


def test_htmx_figures_fragment_refreshes_on_accountChanged(client, acme):
    client.force_login(acme["admin"])
    page = client.get(url(acme["alpha"])).content.decode()
    tag = re.search(r'<div id="account-figures"[^>]*>', page).group(0)
    assert 'hx-trigger="accountChanged from:body"' in tag and f'hx-get="{url(acme["alpha"])}"' in tag
    factories.fund(acme["alpha"], "250.00")
    response = client.get(url(acme["alpha"]), **HX_FIGURES)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="account-figures"') and "<html" not in html
    assert figure(html, "Available credit") == "1,250.00"


def test_details_query_count_does_not_grow_with_records(client, acme, django_assert_max_num_queries):
    admin, alpha, beta = acme["admin"], acme["alpha"], acme["beta"]
    for i in range(25):
        services.transfer_create(actor=admin, payer=alpha, payee=beta, amount=Decimal("1.00"), remark=f"n{i}")
    client.force_login(admin)
    with django_assert_max_num_queries(20):
        assert client.get(url(beta)).status_code == 200
