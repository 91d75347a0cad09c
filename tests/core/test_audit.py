"""Audit events (R-AU-1): who, what, before and after, when, from which address."""

import pytest
from django.test import RequestFactory

from accounts import selectors, services
from core.audit import audit_event
from core.context import current_ip, request_context
from core.middleware import RequestContextMiddleware
from core.models import AuditEvent
from tests.books import D
from tests.factories import effective_contract, fund, make_account


def test_transfer_audited_with_before_after_and_address_R_AU_1(ent):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise), "1000.00")
    b = make_account(enterprise=enterprise)
    with request_context(ip="203.0.113.7"):
        record = services.transfer_create(actor=admin, payer=a, payee=b, amount="250.00", remark="x")
    event = AuditEvent.objects.get(action="transfer")
    assert (event.actor, event.enterprise, event.ip_address) == (admin, enterprise, "203.0.113.7")
    assert (event.object_type, event.object_id) == ("accounts.TransferRecord", str(record.pk))
    assert event.before["payer"]["own_cash"] == "1000.00" and event.after["payer"]["own_cash"] == "750.00"
    assert event.before["payee"]["transfer_book_balance"] == "0.00"
    assert event.after["payee"]["transfer_book_balance"] == "250.00"
    assert event.after["amount"] == "250.00"
    assert event.created_at == record.created_at


def test_every_console_change_is_an_audit_event_R_AU_1(ent):
    enterprise, ma, admin = ent
    effective_contract(enterprise, admin, "500.00")
    a = fund(make_account(enterprise=enterprise), "100.00")
    b = make_account(enterprise=enterprise)
    root = selectors.root_folder(enterprise)
    services.credit_limit_set(actor=admin, account=a, new_limit="200.00")
    services.transfer_create(actor=admin, payer=a, payee=b, amount="50.00", remark="x")
    services.withdrawal_create(actor=admin, source=a, target=b, amount="20.00", remark="y")
    services.alert_set(actor=admin, account=a, enabled=True, threshold="10.00")
    folder = services.folder_create(actor=admin, parent=root, name="Ops")
    services.folder_rename(actor=admin, folder=folder, name="Operations")
    services.accounts_move(actor=admin, accounts=[b], folder=folder)
    services.accounts_move(actor=admin, accounts=[b], folder=root)
    services.folder_delete(actor=admin, folder=folder)
    services.account_remove(actor=admin, account=b)
    actions = list(AuditEvent.objects.filter(actor=admin).order_by("id").values_list("action", flat=True))
    assert actions == ["credit_contract_confirm", "credit_limit_set", "transfer", "withdrawal", "alert_set",
                       "folder_create", "folder_rename", "account_move", "account_move", "folder_delete",
                       "account_remove"]
    limit = AuditEvent.objects.get(action="credit_limit_set")
    assert (limit.before, limit.after) == ({"credit_limit": "0.00"}, {"credit_limit": "200.00"})
    rename = AuditEvent.objects.get(action="folder_rename")
    assert (rename.before, rename.after) == ({"name": "Ops"}, {"name": "Operations"})
    assert set(AuditEvent.objects.values_list("enterprise", flat=True)) == {enterprise.pk}


def test_refused_operation_leaves_no_audit_event_R_AU_1(ent):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    b = make_account(enterprise=enterprise)
    count = AuditEvent.objects.count()
    with pytest.raises(Exception):
        services.transfer_create(actor=admin, payer=a, payee=b, amount="1.00", remark="x")
    assert AuditEvent.objects.count() == count


def test_middleware_records_the_request_address_R_AU_1(db):
    seen = []

    def view(request):
        seen.append(current_ip())
        audit_event(actor=None, action="probe", object_type="test")
        return None

    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.44")
    RequestContextMiddleware(view)(request)
    assert seen == ["192.0.2.44"]
    assert current_ip() is None  # reset after the request
    assert AuditEvent.objects.get(action="probe").ip_address == "192.0.2.44"


def test_audit_values_are_stored_as_json_text_for_money_R_AU_1(db):
    event = audit_event(actor=None, action="x", object_type="t", before={"a": D("1.50"), "b": [D("2")]},
                        after={"ok": True, "n": 3, "none": None})
    event.refresh_from_db()
    assert event.before == {"a": "1.50", "b": ["2"]}
    assert event.after == {"ok": True, "n": 3, "none": None}


def test_audit_events_are_read_only_in_the_backoffice_R_AU_1(client, ent):
    from django.urls import reverse

    from tests.factories import make_user

    manager = make_user(staff=True)
    manager.is_superuser = True
    manager.save()
    client.force_login(manager)
    event = audit_event(actor=None, action="x", object_type="t")
    assert client.get(reverse("admin:core_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:core_auditevent_delete", args=[event.pk])).status_code == 403
    assert client.post(reverse("admin:core_auditevent_change", args=[event.pk]), {"action": "y"}).status_code == 403
    event.refresh_from_db()
    assert event.action == "x"
