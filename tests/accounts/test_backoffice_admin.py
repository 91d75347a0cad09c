"""The back office (R-ORG-6): the account manager in Django's admin site at /backoffice/, through real HTTP.

Top-ups, charges, credit contracts and flags go through the services (audited, R-AU-1); ledger and
balance rows are read-only.
"""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts import services
from core.idempotency import MSG_IDEMPOTENCY_MISMATCH
from accounts import messages
from accounts.models import Account, CreditContract, LedgerEntry, Operation, TopUp, User
from core.models import AuditEvent
from tests.books import D, books, figures
from tests.factories import fund, make_account, make_user, spend

PASSWORD = "pw-Secret-123"


@pytest.fixture
def staff_client(client, db):
    """An account manager: staff with the admin's permissions."""
    manager = make_user(username="am", staff=True)
    manager.is_superuser = True
    manager.save()
    client.force_login(manager)
    client.manager = manager
    return client


def account_form(account, **overrides):
    data = {"name": account.name, "verified_company_id": account.verified_company_id,
            "contact_phone": account.contact_phone, "contact_email": account.contact_email}
    if account.pay_on_behalf:
        data["pay_on_behalf"] = "on"
    if account.risk_flag:
        data["risk_flag"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_backoffice_needs_staff_R_ORG_6(client, ent):
    enterprise, ma, admin = ent
    client.force_login(admin)
    response = client.get("/backoffice/")
    assert response.status_code == 302 and "/backoffice/login/" in response["Location"]
    response = client.post(reverse("admin:accounts_account_top_up", args=[ma.pk]), {"amount": "10.00"})
    assert response.status_code == 302
    assert figures(ma)[0] == D("0.00")


def test_staff_without_permissions_cannot_record_money_R_ORG_6(client, ent):
    enterprise, ma, admin = ent
    client.force_login(make_user(staff=True))
    before = books()
    assert client.post(reverse("admin:accounts_account_top_up", args=[ma.pk]),
                       {"amount": "10.00"}).status_code == 403
    assert client.post(reverse("admin:accounts_enterprise_grant_credit", args=[enterprise.pk]),
                       {"total_credit_limit": "10.00"}).status_code == 403
    assert books() == before


def test_staff_with_change_permission_records_a_top_up_R_ORG_6(client, ent):
    enterprise, ma, admin = ent
    manager = make_user(staff=True)
    manager.user_permissions.add(Permission.objects.get(codename="change_account"))
    client.force_login(manager)
    response = client.post(reverse("admin:accounts_account_top_up", args=[ma.pk]), {"amount": "10.00"})
    assert response.status_code == 302
    assert figures(ma)[0] == D("10.00")


def test_account_manager_records_a_top_up_R_MON_6_R_AU_1(staff_client, ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    spend(a, "30.00")
    url = reverse("admin:accounts_account_top_up", args=[a.pk])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, {"amount": "1,000.00", "description": "bank transfer 8812"},
                                 REMOTE_ADDR="198.51.100.23")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:accounts_account_change", args=[a.pk])
    assert figures(a) == (D("970.00"), D("0.00"), D("0.00"), D("0.00"))  # the bill was paid first
    record = TopUp.objects.get(account=a)
    assert record.operation.actor == staff_client.manager
    event = AuditEvent.objects.get(action="top_up")
    assert (event.actor, event.ip_address, event.enterprise) == (staff_client.manager, "198.51.100.23", enterprise)
    assert event.before["outstanding_balance"] == "30.00" and event.after["own_cash"] == "970.00"


def test_account_manager_records_a_charge_R_MON_5(staff_client, ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    response = staff_client.post(reverse("admin:accounts_account_charge", args=[a.pk]),
                                 {"amount": "150.00", "description": "OSS usage"})
    assert response.status_code == 302
    assert figures(a) == (D("0.00"), D("0.00"), D("0.00"), D("50.00"))
    assert AuditEvent.objects.filter(action="charge", actor=staff_client.manager).count() == 1


@pytest.mark.parametrize("amount, message", [("0", "greater than 0.00"), ("12.345", "at most 2 decimal places"),
                                             ("abc", "Enter an amount in digits")])
def test_bad_amount_shows_the_error_and_changes_nothing_R_MON_1(staff_client, ent, amount, message):
    enterprise, ma, admin = ent
    before = books()
    response = staff_client.post(reverse("admin:accounts_account_top_up", args=[ma.pk]), {"amount": amount})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert books() == before


def test_account_manager_grants_then_changes_the_credit_contract_R_CR_1_R_CR_2(staff_client, ent):
    enterprise, ma, admin = ent
    url = reverse("admin:accounts_enterprise_grant_credit", args=[enterprise.pk])
    assert staff_client.get(url).status_code == 200
    change_page = staff_client.get(reverse("admin:accounts_enterprise_change", args=[enterprise.pk]))
    assert url in change_page.content.decode()  # the enterprise page links to the credit view
    response = staff_client.post(url, {"total_credit_limit": "50,000.00", "reason": "Onboarding"})
    assert response.status_code == 302
    contract = CreditContract.objects.get(enterprise=enterprise)
    assert (contract.status, contract.total_credit_limit) == ("pending", D("50000.00"))
    services.credit_contract_confirm(actor=admin, contract=contract)
    staff_client.post(url, {"total_credit_limit": "60000.00", "reason": "Review"})
    contract.refresh_from_db()
    assert (contract.status, contract.total_credit_limit) == ("effective", D("60000.00"))
    assert AuditEvent.objects.filter(action="credit_contract_change", actor=staff_client.manager).count() == 1
    # A bad figure stays on the form.
    response = staff_client.post(url, {"total_credit_limit": "-5"})
    assert response.status_code == 200 and "cannot be negative" in response.content.decode()


def test_account_manager_sets_flags_through_the_service_audited_R_CR_6_R_AU_1(staff_client, ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    url = reverse("admin:accounts_account_change", args=[a.pk])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, account_form(a, risk_flag="on"), REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302, response.content.decode()[:2000]
    a.refresh_from_db()
    assert a.risk_flag is True
    event = AuditEvent.objects.get(action="account_flags_set")
    assert (event.before["risk_flag"], event.after["risk_flag"], event.ip_address) == (False, True, "203.0.113.9")
    assert a.credit_transfer_disabled
    # Verifying a company is a flag too.
    staff_client.post(url, account_form(a, risk_flag="on", verified_company_id="91440000NEWCO0001"))
    a.refresh_from_db()
    assert a.verified_company_id == "91440000NEWCO0001"
    assert AuditEvent.objects.filter(action="account_flags_set").count() == 2


def test_balances_cannot_be_edited_in_the_backoffice_R_MON_4(staff_client, ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    url = reverse("admin:accounts_account_change", args=[a.pk])
    staff_client.post(url, account_form(a, name="Renamed", own_cash="999999.00", credit_limit="5000.00",
                                        outstanding_balance="0", transfer_book_balance="7"))
    assert figures(a) == (D("100.00"), D("0.00"), D("0.00"), D("0.00"))
    assert a.name == "Renamed"
    event = AuditEvent.objects.get(action="account_details_set")
    assert (event.before, event.after) == ({"name": a.name.replace("Renamed", event.before["name"])},
                                           {"name": "Renamed"})


def test_saving_the_account_form_never_overwrites_a_balance_changed_meanwhile_R_MON_4(staff_client, ent):
    """Regression: the admin saved the whole model, writing back the balances it had read earlier."""
    from django.contrib.admin.sites import site

    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    model_admin = site._registry[Account]
    stale = Account.objects.get(pk=a.pk)  # the admin read the row ...
    fund(a, "50.00")  # ... a top-up commits meanwhile ...
    form_class = model_admin.get_form(None, stale, change=True)
    form = form_class(data=account_form(stale, name="New name"), instance=stale)
    assert form.is_valid(), form.errors  # ... and the form is saved.
    assert form.changed_data == ["name"]
    request = type("Request", (), {"user": staff_client.manager})()
    model_admin.save_model(request, stale, form, change=True)
    assert figures(a)[0] == D("150.00")
    assert a.name == "New name"
    from accounts.ledger import ledger_differences

    assert ledger_differences() == []


def test_accounts_and_enterprises_cannot_be_deleted_in_the_backoffice(staff_client, ent):
    enterprise, ma, admin = ent
    assert staff_client.get(reverse("admin:accounts_account_delete", args=[ma.pk])).status_code == 403
    assert staff_client.get(reverse("admin:accounts_enterprise_delete", args=[enterprise.pk])).status_code == 403


@pytest.mark.parametrize("model", ["ledgerentry", "operation", "topup", "charge", "bill", "transferrecord",
                                   "transferpair", "creditchangerecord", "creditcontract"])
def test_ledger_and_balance_rows_are_read_only_R_MON_4(staff_client, ent, model):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    b = make_account(enterprise=enterprise)
    services.transfer_create(actor=admin, payer=a, payee=b, amount="10.00", remark="x")
    spend(b, "20.00")
    services.credit_contract_grant(actor=None, enterprise=enterprise, total_credit_limit="100.00")
    services.credit_contract_confirm(actor=admin, contract=enterprise.credit_contract)
    Model = {m._meta.model_name: m for m in staff_client.manager._meta.apps.get_app_config("accounts").get_models()}[
        model]
    row = Model.objects.first()
    changelist = staff_client.get(reverse(f"admin:accounts_{model}_changelist"))
    assert changelist.status_code == 200
    assert staff_client.get(reverse(f"admin:accounts_{model}_add")).status_code == 403
    assert staff_client.get(reverse(f"admin:accounts_{model}_delete", args=[row.pk])).status_code == 403
    view = staff_client.get(reverse(f"admin:accounts_{model}_change", args=[row.pk]))
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()
    before = books()
    response = staff_client.post(reverse(f"admin:accounts_{model}_change", args=[row.pk]), {"amount": "1.00"})
    assert response.status_code == 403
    assert books() == before


def test_ledger_is_not_changed_by_the_changelist_actions_R_MON_4(staff_client, ent):
    enterprise, ma, admin = ent
    fund(make_account(enterprise=enterprise), "100.00")
    entries = LedgerEntry.objects.count()
    response = staff_client.post(reverse("admin:accounts_ledgerentry_changelist"),
                                 {"action": "delete_selected", "_selected_action": list(
                                     LedgerEntry.objects.values_list("pk", flat=True)), "post": "yes"})
    assert response.status_code in (200, 302, 403)
    assert LedgerEntry.objects.count() == entries
    assert Operation.objects.count() == 1


def test_user_changes_in_the_backoffice_are_audited_R_AU_1(staff_client, ent):
    enterprise, ma, admin = ent
    member = make_user(username="member1", account=ma)
    url = reverse("admin:accounts_user_change", args=[member.pk])
    data = {"username": "member1", "role": "admin", "account": ma.pk, "is_active": "on",
            "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert User.objects.get(pk=member.pk).role == "admin"
    event = AuditEvent.objects.get(action="backoffice_change", object_id=str(member.pk))
    assert (event.before["role"], event.after["role"]) == ("member", "admin")


@pytest.mark.parametrize("kind", ["top_up", "charge"])
def test_backoffice_money_form_sent_twice_with_its_key_is_recorded_once_R_TR_7(staff_client, ent, kind):
    """The top-up and charge forms carry an idempotency key made when the form is shown: a double click
    or a retry after a lost response records the money once (found by the bank test, bench/bank.py)."""
    import re

    from accounts.models import Charge

    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "100.00")
    url = reverse(f"admin:accounts_account_{kind}", args=[a.pk])
    page = staff_client.get(url).content.decode()
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    assert key != re.search(r'name="idempotency_key" value="([0-9a-f]{32})"',
                            staff_client.get(url).content.decode()).group(1)  # a new key per form shown
    for _ in range(2):
        response = staff_client.post(url, {"amount": "40.00", "description": "twice", "idempotency_key": key})
        assert response.status_code == 302
    model = TopUp if kind == "top_up" else Charge
    assert model.objects.filter(account=a, operation__description="twice").count() == 1
    assert figures(a)[0] == (D("140.00") if kind == "top_up" else D("60.00"))
    # The same key with another amount is refused at the field, and changes nothing.
    response = staff_client.post(url, {"amount": "41.00", "idempotency_key": key})
    assert response.status_code == 200 and MSG_IDEMPOTENCY_MISMATCH in response.content.decode()
    assert model.objects.filter(account=a).count() == (2 if kind == "top_up" else 1)
