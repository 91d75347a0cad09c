"""The Transfer drawer (R-TR-1 to R-TR-5, R-TR-7, R-TR-8): type, review with before/after figures, confirm.

The drawer is opened on account B (the transfer-in side). Transfer: Alpha -> B. Withdraw: B -> back to Alpha.
"""

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts import messages
from accounts.models import LedgerEntry, TransferPair, TransferRecord
from core.models import AuditEvent
from tests.factories import fund, make_account, make_enterprise, make_user, spend

HX = {"HX-Request": "true"}


@pytest.fixture
def world(ent, client):
    enterprise, ma, admin = ent
    a = fund(make_account(enterprise=enterprise, name="Alpha"), "1000.00")
    b = make_account(enterprise=enterprise, name="Beta")
    client.force_login(admin)
    return SimpleNamespace(enterprise=enterprise, ma=ma, admin=admin, a=a, b=b,
                           url=reverse("console:transfer_drawer", args=[b.pk]))


def key_of(client, url, **params):
    response = client.get(url, params, headers=HX)
    return response.context["form"].initial["idempotency_key"]


def post(client, url, step, headers=HX, **data):
    return client.post(url, {"step": step, **data}, headers=headers)


def balances(*accounts):
    for account in accounts:
        account.refresh_from_db()
    return [(x.own_cash, x.transfer_book_balance) for x in accounts]


def test_transfer_form_lists_transfer_out_accounts_with_their_transferable_amount_R_TR_2(client, world):
    spend(world.a, "250.00")  # own cash 750 -> transferable 750
    html = client.get(world.url, headers=HX).content.decode()
    assert f"Alpha ({world.a.account_id}) · transferable 750.00" in html
    assert 'name="remark"' in html and 'name="amount"' in html
    assert 'value="transfer" checked' in html


def test_switching_to_withdraw_lists_only_past_sources_with_withdrawable_amount_R_TR_4(client, world):
    html = client.get(world.url, {"type": "withdraw"}, headers=HX).content.decode()
    assert 'data-testid="no-sources"' in html
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="400.00", remark="budget")
    html = client.get(world.url, {"type": "withdraw"}, headers=HX).content.decode()
    assert f"Alpha ({world.a.account_id}) · withdrawable 400.00" in html
    assert 'value="withdraw" checked' in html
    assert f'hx-get="{world.url}?type=transfer' in html  # the radio re-renders the drawer by type


def test_switching_type_without_javascript_keeps_the_typed_values_R_TR_1(client, world):
    response = post(client, world.url, "switch", headers={}, type="withdraw", amount="12.00", remark="keep",
                    idempotency_key="k-switch")
    assert response.status_code == 200
    assert response.context["kind"] == "withdraw"
    html = response.content.decode()
    assert 'value="12.00"' in html and "keep</textarea>" in html and 'value="k-switch"' in html
    assert "<noscript>" in html


def test_review_shows_both_accounts_before_and_after_and_moves_nothing_R_TR_3(client, world):
    key = key_of(client, world.url)
    response = post(client, world.url, "review", type="transfer", payer=world.a.pk, amount="400.00",
                    remark="Q3 budget", idempotency_key=key)
    assert response.status_code == 200
    assert response.context["step"] == "review"
    payer_side, payee_side = response.context["preview"]["sides"]
    rows = {r["label"]: (r["before"], r["after"]) for r in payer_side["rows"]}
    assert rows["Own cash"] == (Decimal("1000.00"), Decimal("600.00"))
    assert rows["Available credit"] == (Decimal("1000.00"), Decimal("600.00"))
    rows = {r["label"]: (r["before"], r["after"]) for r in payee_side["rows"]}
    assert rows["Transfer book balance"] == (Decimal("0.00"), Decimal("400.00"))
    assert rows["Cash balance"] == (Decimal("0.00"), Decimal("400.00"))
    html = response.content.decode()
    assert f'name="idempotency_key" value="{key}"' in html
    assert 'value="confirm"' in html and 'value="edit"' in html
    assert "1,000.00" in html and "600.00" in html and "+400.00" in html
    assert balances(world.a, world.b) == [(Decimal("1000.00"), Decimal("0.00")), (Decimal("0.00"), Decimal("0.00"))]
    assert not TransferRecord.objects.exists() and not LedgerEntry.objects.filter(account=world.b).exists()


def test_review_over_the_transferable_amount_is_refused_at_the_amount_R_TR_2(client, world):
    response = post(client, world.url, "review", type="transfer", payer=world.a.pk, amount="1000.01",
                    remark="too much", idempotency_key="k-over")
    assert response.status_code == 200 and response.context["step"] == "edit"
    assert response.context["form"].errors["amount"] == [
        messages.MSG_OVER_TRANSFERABLE.format(limit="1,000.00", amount="1,000.01")]
    # Exactly the transferable amount is allowed.
    response = post(client, world.url, "review", type="transfer", payer=world.a.pk, amount="1000.00",
                    remark="all of it", idempotency_key="k-over")
    assert response.context["step"] == "review"


def test_review_refuses_an_overdue_payer_at_the_payer_field_R_TR_2(client, world):
    payer = make_account(enterprise=world.enterprise, name="Late")
    spend(payer, "50.00", at=timezone.now() - timedelta(days=40))  # a bill due 25 days ago
    fund(payer, "10.00")  # pays part of it: still overdue 40.00
    response = post(client, world.url, "review", type="transfer", payer=payer.pk, amount="1.00",
                    remark="x", idempotency_key="k-late")
    assert response.context["form"].errors["payer"] == [
        messages.MSG_PAYER_OVERDUE.format(account=payer.account_id, overdue="40.00")]


@pytest.mark.parametrize("remark,message", [("", messages.MSG_REMARK_REQUIRED), ("   ", messages.MSG_REMARK_REQUIRED),
                                            ("x" * 201, messages.MSG_REMARK_TOO_LONG.format(length=201))])
def test_remark_of_1_to_200_characters_is_required_R_TR_1(client, world, remark, message):
    response = post(client, world.url, "review", type="transfer", payer=world.a.pk, amount="10.00",
                    remark=remark, idempotency_key="k-remark")
    assert response.context["form"].errors["remark"] == [message]


def test_payer_of_another_enterprise_is_not_a_choice_R_TR_1(client, world):
    _, other_ma, _ = make_enterprise(name="Globex")
    fund(other_ma, "500.00")
    response = post(client, world.url, "confirm", type="transfer", payer=other_ma.pk, amount="10.00",
                    remark="steal", idempotency_key="k-other")
    assert response.status_code == 200
    assert "payer" in response.context["form"].errors
    assert balances(other_ma) == [(Decimal("500.00"), Decimal("0.00"))]
    assert not TransferRecord.objects.exists()


def test_confirm_moves_money_closes_the_drawer_and_refreshes_the_table_R_TR_3(client, world):
    key = key_of(client, world.url)
    response = post(client, world.url, "confirm", type="transfer", payer=world.a.pk, amount="400.00",
                    remark="Q3 budget", idempotency_key=key)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "accountChanged"
    html = response.content.decode()
    assert 'hx-swap-oob="true"' in html and "Transferred 400.00 from Alpha" in html
    assert 'class="drawer' not in html
    assert balances(world.a, world.b) == [(Decimal("600.00"), Decimal("0.00")), (Decimal("0.00"), Decimal("400.00"))]
    record = TransferRecord.objects.get()
    assert (record.kind, record.payer, record.payee, record.amount, record.remark, record.actor) == (
        "transfer", world.a, world.b, Decimal("400.00"), "Q3 budget", world.admin)
    assert TransferPair.objects.get(source=world.a, target=world.b).remaining_revocable == Decimal("400.00")


def test_confirm_twice_with_the_same_key_moves_money_once_and_both_answers_succeed_R_TR_7(client, world):
    key = key_of(client, world.url)
    data = {"type": "transfer", "payer": world.a.pk, "amount": "400.00", "remark": "once", "idempotency_key": key}
    first = post(client, world.url, "confirm", **data)
    second = post(client, world.url, "confirm", **data)
    assert first.status_code == second.status_code == 200
    assert first["HX-Trigger"] == second["HX-Trigger"] == "accountChanged"
    assert "Transferred 400.00" in second.content.decode()
    assert TransferRecord.objects.count() == 1
    assert AuditEvent.objects.filter(action="transfer").count() == 1
    assert balances(world.a, world.b) == [(Decimal("600.00"), Decimal("0.00")), (Decimal("0.00"), Decimal("400.00"))]
    # A resubmit without JavaScript (the browser's back and submit again) is answered the same way.
    third = post(client, world.url, "confirm", headers={}, **data)
    assert third.status_code == 303
    assert TransferRecord.objects.count() == 1


def test_confirm_rechecks_and_refuses_with_the_current_figure_R_TR_8(client, world):
    key = key_of(client, world.url)
    data = {"type": "transfer", "payer": world.a.pk, "amount": "400.00", "remark": "late", "idempotency_key": key}
    assert post(client, world.url, "review", **data).context["step"] == "review"
    spend(world.a, "700.00")  # meanwhile Alpha spends: transferable is now 300.00
    response = post(client, world.url, "confirm", **data)
    assert response.status_code == 200
    assert "HX-Trigger" not in response
    assert response.context["form"].errors["amount"] == [
        messages.MSG_OVER_TRANSFERABLE.format(limit="300.00", amount="400.00")]
    assert 'data-field-error="amount"' in response.content.decode()
    assert not TransferRecord.objects.exists()
    assert balances(world.b) == [(Decimal("0.00"), Decimal("0.00"))]


def test_back_returns_to_the_form_with_the_values_and_the_same_key_R_TR_7(client, world):
    response = post(client, world.url, "edit", type="transfer", payer=world.a.pk, amount="400.00",
                    remark="again", idempotency_key="k-back")
    assert response.context["step"] == "edit"
    html = response.content.decode()
    assert 'value="k-back"' in html and 'value="400.00"' in html and "again</textarea>" in html
    assert f'<option value="{world.a.pk}" selected>' in html


def test_withdraw_review_then_confirm_moves_money_back_R_TR_4_R_TR_5(client, world):
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="400.00", remark="budget")
    key = key_of(client, world.url, type="withdraw")
    data = {"type": "withdraw", "source": world.a.pk, "amount": "150.00", "remark": "unused", "idempotency_key": key}
    review = post(client, world.url, "review", **data)
    assert review.context["step"] == "review"
    out_side, back_side = review.context["preview"]["sides"]
    assert out_side["account"] == world.b and back_side["account"] == world.a
    assert {r["label"]: r["after"] for r in out_side["rows"]}["Transfer book balance"] == Decimal("250.00")
    assert {r["label"]: r["after"] for r in back_side["rows"]}["Own cash"] == Decimal("750.00")
    assert review.context["preview"]["limit"] == Decimal("400.00")
    confirm = post(client, world.url, "confirm", **data)
    assert confirm["HX-Trigger"] == "accountChanged"
    assert "Withdrew 150.00 from Beta" in confirm.content.decode()
    assert balances(world.a, world.b) == [(Decimal("750.00"), Decimal("0.00")), (Decimal("0.00"), Decimal("250.00"))]
    assert TransferPair.objects.get(source=world.a, target=world.b).remaining_revocable == Decimal("250.00")


def test_withdraw_over_the_withdrawable_amount_is_refused_at_the_amount_R_TR_4(client, world):
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="400.00", remark="budget")
    spend(world.b, "100.00")  # spent transferred funds cannot be withdrawn: withdrawable 300.00
    response = post(client, world.url, "review", type="withdraw", source=world.a.pk, amount="300.01",
                    remark="back", idempotency_key="k-w")
    assert response.context["form"].errors["amount"] == [
        messages.MSG_OVER_WITHDRAWABLE.format(limit="300.00", amount="300.01")]
    response = post(client, world.url, "confirm", type="withdraw", source=world.a.pk, amount="300.01",
                    remark="back", idempotency_key="k-w")
    assert response.context["form"].errors["amount"]
    assert TransferRecord.objects.filter(kind="withdrawal").count() == 0


def test_confirm_without_htmx_redirects_with_a_message_R_TR_3(client, world):
    response = post(client, world.url, "confirm", headers={}, type="transfer", payer=world.a.pk, amount="1.00",
                    remark="plain", idempotency_key="k-plain", next="/accounts/?page=2")
    assert response.status_code == 303 and response["Location"] == "/accounts/?page=2"
    assert TransferRecord.objects.count() == 1


def test_refusal_without_htmx_renders_the_full_page_with_the_error_R_TR_2(client, world):
    response = post(client, world.url, "review", headers={}, type="transfer", payer=world.a.pk, amount="5000",
                    remark="x", idempotency_key="k-page")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and "Transferable amount is 1,000.00; you asked for 5,000.00" in html


def test_disabled_transfer_in_account_shows_the_reason_R_CR_6(client, world):
    services.account_flags_set(actor=None, account=world.b, risk_flag=True)
    html = client.get(world.url, headers=HX).content.decode()
    assert "Contact your business manager (R-CR-6)" in html
    response = post(client, world.url, "review", type="transfer", payer=world.a.pk, amount="1.00", remark="x",
                    idempotency_key="k-risk")
    assert "disabled for account" in response.context["form"].non_field_errors()[0]


def test_member_cannot_post_a_transfer_R_TR_1(client, world):
    client.force_login(make_user(account=world.b))
    response = post(client, world.url, "confirm", type="transfer", payer=world.a.pk, amount="1.00",
                    remark="x", idempotency_key="k-m")
    assert response.status_code == 403
    assert not TransferRecord.objects.exists()


def _many_accounts(enterprise, n):
    """n more funded accounts, own cash 1.00 .. n.00 (so the ordering by own cash is known)."""
    return [fund(make_account(enterprise=enterprise, name=f"Bulk {i:03d}"), f"{i}.00") for i in range(1, n + 1)]


def test_transfer_out_list_is_capped_and_ordered_by_own_cash_for_large_enterprises_R_TR_2(client, world):
    """Thousands of accounts must not become a select of thousands of options: 50 at most, most own cash first."""
    _many_accounts(world.enterprise, 60)
    response = client.get(world.url, headers=HX)
    choices = [c for c in response.context["form"].fields["payer"].choices if c[0] != ""]
    assert len(choices) == 50
    assert choices[0][0] == world.a.pk  # Alpha has 1,000.00 of own cash
    assert "Showing the 50 accounts with the most own cash" in response.content.decode()


def test_transfer_out_search_narrows_by_name_or_account_id_R_TR_2(client, world):
    bulk = _many_accounts(world.enterprise, 60)
    response = client.get(world.url, {"payer_q": "Bulk 007"}, headers=HX)
    assert [c[0] for c in response.context["form"].fields["payer"].choices if c[0] != ""] == [bulk[6].pk]
    response = client.get(world.url, {"payer_q": bulk[2].account_id}, headers=HX)
    assert [c[0] for c in response.context["form"].fields["payer"].choices if c[0] != ""] == [bulk[2].pk]


def test_transfer_from_an_account_outside_the_first_50_goes_through_review_and_confirm_R_TR_3(client, world):
    bulk = _many_accounts(world.enterprise, 60)
    poorest = bulk[0]  # own cash 1.00: not among the 50 shown by default
    key = key_of(client, world.url)
    data = {"type": "transfer", "payer": poorest.pk, "amount": "0.50", "remark": "small top-up",
            "idempotency_key": key}
    review = post(client, world.url, "review", **data)
    assert review.context["step"] == "review"
    done = post(client, world.url, "confirm", **data)
    assert done.status_code == 200 and done.headers.get("HX-Trigger") == "accountChanged"
    assert balances(poorest, world.b) == [(Decimal("0.50"), Decimal("0.00")), (Decimal("0.00"), Decimal("0.50"))]


def test_transfer_out_search_never_lists_another_enterprises_accounts_R_ORG_6(client, world):
    other, other_ma, _ = make_enterprise(name="Globex")
    stranger = fund(make_account(enterprise=other, name="Globex rich"), "99999.00")
    response = client.get(world.url, {"payer_q": "Globex"}, headers=HX)
    assert [c for c in response.context["form"].fields["payer"].choices if c[0] != ""] == []
    response = client.get(world.url, {"payer": stranger.pk}, headers=HX)
    assert stranger.pk not in [c[0] for c in response.context["form"].fields["payer"].choices]


def _confirm_queries(client, world, django_assert_max_num_queries, limit):
    key = key_of(client, world.url)
    with django_assert_max_num_queries(limit) as ctx:
        response = post(client, world.url, "confirm", type="transfer", payer=world.a.pk, amount="1.00",
                        remark="count", idempotency_key=key)
    assert response.headers.get("HX-Trigger") == "accountChanged"
    return len(ctx.captured_queries)


def test_drawer_query_count_does_not_grow_with_the_withdrawal_sources_R_TR_4(client, world,
                                                                               django_assert_max_num_queries):
    """The withdrawal sources of the drawer's account come with their withdrawable amounts in one query: a
    confirm used to cost one query per account that ever transferred to it (R-TR-4's withdrawable amount)."""
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="5.00", remark="first")
    few = _confirm_queries(client, world, django_assert_max_num_queries, 40)
    for i in range(12):
        source = fund(make_account(enterprise=world.enterprise, name=f"Source {i}"), "10.00")
        services.transfer_create(actor=world.admin, payer=source, payee=world.b, amount="1.00", remark="src")
    html = client.get(world.url, {"type": "withdraw"}, headers=HX).content.decode()
    assert "Source 11" in html and html.count("· withdrawable 1.00") == 12
    assert _confirm_queries(client, world, django_assert_max_num_queries, 40) == few


def _choice_values(response, field):
    return [value for value, _ in response.context["form"].fields[field].choices if value != ""]


def test_a_refused_confirm_shows_the_form_again_with_its_full_lists_R_TR_8(client, world):
    """A confirm reads only the chosen accounts; when it does not go through, the form comes back with the same
    lists as the edit step (transfer-out accounts and withdrawal sources), the error at its field, and the typed
    values."""
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="10.00", remark="first")
    others = [fund(make_account(enterprise=world.enterprise, name=f"Other {i}"), "5.00") for i in range(3)]
    services.transfer_create(actor=world.admin, payer=others[0], payee=world.b, amount="1.00", remark="second")
    edit = client.get(world.url, headers=HX)
    data = {"type": "transfer", "payer": world.a.pk, "amount": "990.01", "remark": "too much",
            "idempotency_key": "k-full-lists"}
    refused = post(client, world.url, "confirm", **data)
    assert refused.status_code == 200 and "HX-Trigger" not in refused
    assert refused.context["form"].errors["amount"] == [
        messages.MSG_OVER_TRANSFERABLE.format(limit="990.00", amount="990.01")]
    assert sorted(_choice_values(refused, "payer")) == sorted(_choice_values(edit, "payer"))
    assert {world.a.pk, world.ma.pk, *(o.pk for o in others)} <= set(_choice_values(refused, "payer"))
    assert sorted(_choice_values(refused, "source")) == sorted([world.a.pk, others[0].pk])
    assert refused.context["has_sources"] is True
    html = refused.content.decode()
    assert "Other 2" in html and 'value="990.01"' in html
    assert TransferRecord.objects.count() == 2


@pytest.mark.parametrize("field,value", [("payer", "not-a-number"), ("payer", "-1"), ("source", "x")])
def test_a_confirm_with_a_choice_that_is_no_account_is_refused_at_its_field_R_TR_1(client, world, field, value):
    kind = "transfer" if field == "payer" else "withdraw"
    response = post(client, world.url, "confirm", type=kind, amount="1.00", remark="odd", idempotency_key="k-odd",
                    **{field: value})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not TransferRecord.objects.exists()


def test_a_confirm_to_a_source_that_never_transferred_here_is_refused_at_the_source_R_TR_4(client, world):
    stranger = fund(make_account(enterprise=world.enterprise, name="Stranger"), "50.00")
    response = post(client, world.url, "confirm", type="withdraw", source=stranger.pk, amount="1.00",
                    remark="back", idempotency_key="k-stranger")
    assert response.status_code == 200
    assert "source" in response.context["form"].errors
    assert not TransferRecord.objects.exists()
    assert balances(stranger) == [(Decimal("50.00"), Decimal("0.00"))]


def test_a_withdrawal_of_everything_sent_twice_with_its_key_answers_the_first_result_R_TR_7(client, world):
    """The first confirm empties the pair, so the source leaves the drawer's list; the same confirm sent again (a
    double click, a retry after a lost answer) still reaches the service, which replays the first result."""
    services.transfer_create(actor=world.admin, payer=world.a, payee=world.b, amount="40.00", remark="budget")
    key = key_of(client, world.url, type="withdraw")
    data = {"type": "withdraw", "source": world.a.pk, "amount": "40.00", "remark": "all back", "idempotency_key": key}
    first = post(client, world.url, "confirm", **data)
    again = post(client, world.url, "confirm", **data)
    for response in (first, again):
        assert response.headers.get("HX-Trigger") == "accountChanged", response.content.decode()[:500]
        assert "Withdrew 40.00 from Beta" in response.content.decode()
    assert TransferRecord.objects.filter(kind="withdrawal").count() == 1
    assert balances(world.a, world.b) == [(Decimal("1000.00"), Decimal("0.00")), (Decimal("0.00"), Decimal("0.00"))]
    # A new request from the emptied pair is refused with the figure, and the form comes back without that source.
    refused = post(client, world.url, "confirm", **{**data, "idempotency_key": "k-new"})
    assert refused.context["form"].errors["amount"] == [
        messages.MSG_OVER_WITHDRAWABLE.format(limit="0.00", amount="40.00")]
    assert _choice_values(refused, "source") == []
    assert TransferRecord.objects.filter(kind="withdrawal").count() == 1
