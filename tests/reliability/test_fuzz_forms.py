"""Bad input in every form field of every page and drawer (issue 5, Reliability 4; R-MON-1, R-ORG-6).

Each test posts (or gets) one field group with Hypothesis-generated bad values (negative, zero, too many decimals,
huge, NaN, Infinity, exponent notation, non-ASCII digits, empty, very long, HTML and script, SQL fragments, null
bytes, ids of another enterprise's accounts and folders, unknown choices) while the other fields are valid. The
answer is never a 5xx: a 4xx, or the page again with the error shown (a 200, or a redirect to a page showing the
error), and the database is exactly as before (every row of every product table is compared).

The data is built once per test (``fuzz``); each example runs inside a savepoint that is rolled back, so every
example starts from the same data: that is why the function-scoped fixture health check is suppressed.
"""

import io
import itertools
from decimal import Decimal, InvalidOperation
import re
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from accounts import services
from sharing.models import AssetType, ScopeType, UsageRecord
from sharing.usage_import import MAX_FILE_BYTES, MSG_FILE_TOO_BIG

from .conftest import build_world, diff, snapshot
from .strategies import HTML, NULLS, SQL, bad_amounts, bad_ids, junk_text

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])
FUZZ_MANY_REQUESTS = settings(FUZZ, max_examples=30)  # tests that send several requests per example
HX = {"HX-Request": "true"}
ERROR_MARKERS = (b'role="alert"', b"flash-error")
_keys = itertools.count(1)


class _Rollback(Exception):
    pass


@pytest.fixture
def fuzz(db):
    """The two enterprises of the access matrix, with A's contract effective (so a valid credit change would
    pass) and one transfer from A's management account into the secret account (so it has a withdrawal source)."""
    world = build_world()
    services.credit_contract_confirm(actor=world.admin_a, contract=world.contract)
    services.transfer_create(actor=world.admin_a, payer=world.ma, payee=world.secret, amount="100.00",
                             remark="seed transfer")
    world.contract_b = services.credit_contract_grant(actor=None, enterprise=world.enterprise_b,
                                                      total_credit_limit="5.00")
    return world


def refused(client, method, url, data=None, *, headers=None, error_shown=True, **extra):
    """Send the request inside a savepoint that is rolled back; assert a refusal that changed nothing: a 4xx, or
    the page again with the error shown (``error_shown=False``: the form again, as for an unknown step)."""
    before = snapshot()
    try:
        with transaction.atomic():
            response = getattr(client, method)(url, data or {}, headers=headers or {}, **extra)
            shown = response
            if response.status_code in (301, 302, 303):
                shown = client.get(response["Location"])
            after = snapshot()
            raise _Rollback
    except _Rollback:
        pass
    status = response.status_code
    assert status < 500, (url, data, status)
    if method == "post":
        changed = diff(before, after)
        assert changed == [], f"bad input changed the database: POST {url} {data!r}: {changed}"
        if not 400 <= status < 500 and error_shown:
            body = shown.content if not shown.streaming else b""
            assert any(marker in body for marker in ERROR_MARKERS), \
                f"bad input neither refused nor shown an error: POST {url} {data!r} -> {status}"
    return response


def key():
    return f"fuzz-{next(_keys)}"


# --- Credit Quota Settings ------------------------------------------------------------------------------------

@FUZZ
@given(value=bad_amounts(allow_zero=True), htmx=st.booleans())
def test_credit_limit_refuses_bad_amounts_R_MON_1(client, fuzz, value, htmx):
    client.force_login(fuzz.admin_a)
    refused(client, "post", reverse("console:credit_drawer", args=[fuzz.secret.pk]),
            {"new_limit": value, "reason": "fuzz", "idempotency_key": key()}, headers=HX if htmx else None)


@FUZZ
@given(reason=st.text(min_size=201, max_size=3000).filter(lambda t: len(t.strip()) > 200),
       idem=st.one_of(st.just(""), st.text(min_size=81, max_size=500).filter(lambda t: len(t.strip()) > 80),
                      st.sampled_from(NULLS[:4])))
def test_credit_limit_refuses_a_long_reason_or_a_bad_idempotency_key_R_CR_5(client, fuzz, reason, idem):
    client.force_login(fuzz.admin_a)
    url = reverse("console:credit_drawer", args=[fuzz.secret.pk])
    refused(client, "post", url, {"new_limit": "10.00", "reason": reason, "idempotency_key": key()})
    refused(client, "post", url, {"new_limit": "10.00", "reason": "ok", "idempotency_key": idem})


def test_credit_limit_control_a_valid_value_is_applied_R_CR_5(client, fuzz):
    """The control of the fuzz tests above: with the same data a valid value does change the limit."""
    client.force_login(fuzz.admin_a)
    response = client.post(reverse("console:credit_drawer", args=[fuzz.secret.pk]),
                           {"new_limit": "10.00", "reason": "ok", "idempotency_key": key()})
    assert response.status_code == 303
    fuzz.secret.refresh_from_db()
    assert str(fuzz.secret.credit_limit) == "10.00"


# --- Transfer and withdraw ------------------------------------------------------------------------------------

def transfer_data(fuzz, **changes):
    data = {"type": "transfer", "payer": fuzz.ma.pk, "source": "", "amount": "5.00", "remark": "fuzz",
            "idempotency_key": key(), "step": "confirm"}
    data.update(changes)
    return data


@FUZZ
@given(value=bad_amounts(), step=st.sampled_from(["review", "confirm"]), kind=st.sampled_from(["transfer", "withdraw"]))
def test_transfer_refuses_bad_amounts_R_MON_1(client, fuzz, value, step, kind):
    client.force_login(fuzz.admin_a)
    refused(client, "post", reverse("console:transfer_drawer", args=[fuzz.secret.pk]),
            transfer_data(fuzz, amount=value, step=step, type=kind, source=fuzz.ma.pk))


@FUZZ
@given(data=st.data(), field=st.sampled_from(["payer", "source"]), step=st.sampled_from(["review", "confirm"]))
def test_transfer_refuses_accounts_it_may_not_use_R_ORG_6(client, fuzz, data, field, step):
    """Another enterprise's account, the drawer's own account, unknown ids and junk, as payer or source."""
    client.force_login(fuzz.admin_a)
    value = data.draw(bad_ids([fuzz.b_account.pk, fuzz.ma_b.pk, fuzz.secret.pk,
                               *([fuzz.own.pk] if field == "source" else [])]))
    kind = "transfer" if field == "payer" else "withdraw"
    refused(client, "post", reverse("console:transfer_drawer", args=[fuzz.secret.pk]),
            transfer_data(fuzz, type=kind, step=step, **{field: value}))


@FUZZ
@given(remark=st.one_of(st.just(""), st.text(alphabet=" \t\r\n", max_size=20),
                        st.text(min_size=201, max_size=3000).filter(lambda t: len(t.strip()) > 200)),
       kind=st.one_of(st.just("transfer"), st.text(max_size=20)), step=st.sampled_from(["review", "confirm"]))
def test_transfer_refuses_a_missing_or_long_remark_and_unknown_types_R_TR_1(client, fuzz, remark, kind, step):
    client.force_login(fuzz.admin_a)
    url = reverse("console:transfer_drawer", args=[fuzz.secret.pk])
    refused(client, "post", url, transfer_data(fuzz, remark=remark, step=step))
    if kind not in ("transfer", "withdraw"):
        refused(client, "post", url, transfer_data(fuzz, type=kind, step=step, remark="ok", amount="-1"))


@FUZZ
@given(step=junk_text(max_size=20), idem=st.one_of(st.just(""), st.text(min_size=81, max_size=300)))
def test_transfer_unknown_steps_and_bad_keys_change_nothing_R_TR_7(client, fuzz, step, idem):
    client.force_login(fuzz.admin_a)
    url = reverse("console:transfer_drawer", args=[fuzz.secret.pk])
    if step not in ("confirm", "review"):  # an unknown step shows the form again; only "confirm" moves money
        response = refused(client, "post", url, transfer_data(fuzz, step=step), error_shown=False)
        assert response.status_code in (200, 400)
    if len(idem.strip()) == 0 or len(idem.strip()) > 80:
        refused(client, "post", url, transfer_data(fuzz, idempotency_key=idem))


def test_transfer_control_a_valid_confirm_moves_money_R_TR_3(client, fuzz):
    client.force_login(fuzz.admin_a)
    before = snapshot()
    response = client.post(reverse("console:transfer_drawer", args=[fuzz.secret.pk]), transfer_data(fuzz))
    assert response.status_code == 303 and diff(before, snapshot()) != []


# --- Low balance alert, one and batch -------------------------------------------------------------------------

@FUZZ
@given(value=bad_amounts(allow_zero=True), enabled=st.sampled_from(["on", "", "off", "true", "<b>", "\x00"]))
def test_alert_refuses_bad_thresholds_R_AL_1(client, fuzz, value, enabled):
    client.force_login(fuzz.admin_a)
    refused(client, "post", reverse("console:alert_drawer", args=[fuzz.secret.pk]),
            {"enabled": enabled, "threshold": value})


@FUZZ
@given(data=st.data(), value=st.one_of(st.just("10.00"), bad_amounts(allow_zero=True)))
def test_alert_batch_refuses_foreign_accounts_and_bad_thresholds_R_AL_2(client, fuzz, data, value):
    client.force_login(fuzz.admin_a)
    accounts = data.draw(st.lists(bad_ids([fuzz.b_account.pk, fuzz.ma_b.pk]), max_size=3))
    if value == "10.00" and not accounts:
        accounts = [str(fuzz.b_account.pk)]
    url = reverse("console:alert_batch")
    # A foreign or unknown account next to a real one: refused whole (R-AL-2: all or none).
    refused(client, "post", url, {"accounts": [fuzz.secret.pk, *accounts] if accounts else [fuzz.secret.pk],
                                  "enabled": "on", "threshold": value})


def test_alert_batch_with_no_account_is_refused_R_AL_2(client, fuzz):
    client.force_login(fuzz.admin_a)
    refused(client, "post", reverse("console:alert_batch"), {"enabled": "on", "threshold": "5.00"})


# --- Contracts and messages -----------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_contract_confirm_refuses_other_and_unknown_contracts_R_CR_1(client, fuzz, data):
    client.force_login(fuzz.admin_a)
    value = data.draw(bad_ids([fuzz.contract_b.pk, fuzz.contract.pk]))  # A's own contract is already effective
    refused(client, "post", reverse("console:contracts"), {"contract": value})


@FUZZ
@given(data=st.data(), action=junk_text(max_size=20), return_query=junk_text())
def test_messages_refuse_other_accounts_messages_R_ORG_6(client, fuzz, data, action, return_query):
    client.force_login(fuzz.member)
    value = data.draw(bad_ids([fuzz.message.pk]))
    if action != "read_all":
        refused(client, "post", reverse("console:messages"),
                {"action": action, "message": value, "return_query": return_query})


# --- Sharing: share drawer, rules ---------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), scope_type=st.one_of(st.sampled_from(["accounts", "folders"]), junk_text(max_size=20)))
def test_share_refuses_foreign_recipients_and_unknown_scopes_R_SH_2(client, fuzz, data, scope_type):
    client.force_login(fuzz.admin_a)
    accounts = data.draw(st.lists(bad_ids([fuzz.b_account.pk, fuzz.ma_b.pk]), max_size=3))
    folders = data.draw(st.lists(bad_ids([fuzz.root_b.pk]), max_size=3))
    refused(client, "post", reverse("sharing:share_drawer", args=[fuzz.coupon.pk]),
            {"scope_type": scope_type, "accounts": accounts, "folders": folders, "action": "share",
             "q": data.draw(junk_text())})


@FUZZ
@given(data=st.data(), asset_type=st.one_of(st.sampled_from(AssetType.values), junk_text(max_size=20)),
       scope_type=st.one_of(st.sampled_from(ScopeType.values), junk_text(max_size=20)))
def test_rules_refuse_foreign_accounts_folders_and_unknown_choices_R_SH_3(client, fuzz, data, asset_type, scope_type):
    client.force_login(fuzz.admin_a)
    ids = data.draw(st.one_of(st.just(fuzz.b_account.account_id), junk_text(min_size=1)))
    folders = data.draw(st.lists(bad_ids([fuzz.root_b.pk]), max_size=2))
    valid_choices = asset_type in AssetType.values and scope_type in ScopeType.values
    account_ids = ids if valid_choices or data.draw(st.booleans()) else ""
    if valid_choices and not account_ids.replace(",", " ").split():
        account_ids = fuzz.b_account.account_id
    refused(client, "post", reverse("sharing:rules"), {"asset_type": asset_type, "scope_type": scope_type,
                                                       "account_ids": account_ids, "folders": folders,
                                                       "enabled": "on"})


# --- Resource directory ---------------------------------------------------------------------------------------

BAD_FOLDER_NAMES = st.one_of(st.just(""), st.text(alphabet=" \t\r\n", max_size=10),
                             st.text(min_size=25, max_size=2000).filter(lambda t: len(t.strip()) > 24),
                             st.sampled_from(NULLS + ["Hidden Folder Zq"]),  # a sibling's name too
                             st.text(max_size=10).map(lambda t: t + "\x00"))


@FUZZ
@given(name=BAD_FOLDER_NAMES, htmx=st.booleans())
def test_folder_create_and_rename_refuse_bad_names_R_ORG_3(client, fuzz, name, htmx):
    client.force_login(fuzz.admin_a)
    headers = HX if htmx else None
    refused(client, "post", reverse("sharing:folder_create"), {"parent": fuzz.root_a.pk, "name": name},
            headers=headers)
    if name.strip() != fuzz.hidden.name:  # its own name is no change, not bad input
        refused(client, "post", reverse("sharing:folder_rename", args=[fuzz.hidden.pk]), {"name": name},
                headers=headers)


@FUZZ_MANY_REQUESTS
@given(data=st.data())
def test_directory_refuses_foreign_folders_and_accounts_R_ORG_6(client, fuzz, data):
    client.force_login(fuzz.admin_a)
    folder = data.draw(bad_ids([fuzz.root_b.pk]))
    accounts = data.draw(st.lists(bad_ids([fuzz.b_account.pk, fuzz.ma_b.pk]), max_size=3))
    refused(client, "post", reverse("sharing:folder_create"), {"parent": folder, "name": "Fine"})
    refused(client, "post", reverse("sharing:accounts_move"), {"folder": folder, "accounts": [fuzz.own.pk]})
    refused(client, "post", reverse("sharing:accounts_move"), {"folder": fuzz.hidden.pk, "accounts": accounts,
                                                               "from": data.draw(bad_ids([fuzz.root_b.pk]))})
    refused(client, "post", reverse("sharing:invite"), {"account_id": fuzz.b_account.account_id, "folder": folder})


@FUZZ
@given(account_id=st.one_of(junk_text(), st.integers(min_value=0, max_value=10 ** 20).map(str)))
def test_invite_refuses_unknown_and_bad_account_ids_R_ORG_4(client, fuzz, account_id):
    client.force_login(fuzz.admin_a)
    refused(client, "post", reverse("sharing:invite"), {"account_id": account_id, "folder": fuzz.hidden.pk})


def test_folder_delete_and_account_remove_of_another_enterprise_are_404_R_ORG_6(client, fuzz):
    client.force_login(fuzz.admin_a)
    assert refused(client, "post", reverse("sharing:folder_delete", args=[fuzz.root_b.pk])).status_code == 404
    assert refused(client, "post", reverse("sharing:account_remove", args=[fuzz.b_account.pk])).status_code == 404


# --- Sign-in --------------------------------------------------------------------------------------------------

@FUZZ
@given(username=junk_text(max_size=200), password=junk_text(max_size=200))
def test_sign_in_with_junk_is_a_form_error(client, fuzz, username, password):
    response = refused(client, "post", reverse("login"), {"username": username, "password": password})
    assert "_auth_user_id" not in client.session
    assert response.status_code in (200, 400, 429)  # 400: control characters (core.middleware)


# --- Filters in the URL (GET): never a 5xx, never another enterprise's data -----------------------------------

def get_ok(client, url, params, secrets):
    response = refused(client, "get", url, params)
    assert response.status_code in (200, 400, 404), (url, params, response.status_code)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    sent = repr(params)
    leaked = [s for s in secrets if s.encode() in body and s not in sent]
    assert not leaked, (url, params, leaked)


QUERY = st.one_of(junk_text(max_size=120), st.integers(min_value=-10 ** 20, max_value=10 ** 20).map(str),
                  st.sampled_from(["", "0", "-1", "1e9", "NaN", "2025-02-30", "9999-12-31", "0001-01-01", "-name",
                                   "--name", "name;", "__class__", "credit_limit desc"]))


@FUZZ_MANY_REQUESTS
@given(q=QUERY, folder=QUERY, alert=QUERY, sort=QUERY, size=QUERY, page=QUERY, htmx=st.booleans())
def test_account_table_and_export_filters_R_UAM_2(client, fuzz, q, folder, alert, sort, size, page, htmx):
    client.force_login(fuzz.admin_b)  # B's administrator, naming A's folder or junk
    params = {"q": q, "folder": folder, "alert": alert, "sort": sort, "size": size, "page": page}
    headers = {**HX, "HX-Target": "account-table"} if htmx else None
    response = refused(client, "get", reverse("console:accounts"), params, headers=headers)
    assert response.status_code in (200, 400)
    assert not any(s.encode() in response.content for s in fuzz.secrets_of_a if s not in repr(params))
    get_ok(client, reverse("console:accounts_export"), params, fuzz.secrets_of_a)


@FUZZ_MANY_REQUESTS
@given(kind=QUERY, q=QUERY, account=QUERY, date_from=QUERY, date_to=QUERY, page=QUERY, action=QUERY)
def test_record_page_filters_R_TR_6_R_CR_7_R_AU_1(client, fuzz, kind, q, account, date_from, date_to, page, action):
    params = {"kind": kind, "q": q, "account": account, "date_from": date_from, "date_to": date_to, "page": page,
              "action": action, "unread": kind, "confirm": account}
    for user, secrets in ((fuzz.admin_b, fuzz.secrets_of_a), (fuzz.member, fuzz.secrets_of_others)):
        client.force_login(user)
        for name in ("transfer_records", "credit_control", "audit_log", "messages", "contracts"):
            if name == "audit_log" and user is fuzz.member:
                continue
            get_ok(client, reverse(f"console:{name}"), params, secrets)
    client.force_login(fuzz.admin_a)
    get_ok(client, reverse("console:transfer_records_drawer", args=[fuzz.secret.pk]), params, [])


@FUZZ_MANY_REQUESTS
@given(q=QUERY, status=QUERY, shared=QUERY, page=QUERY, folder=QUERY, asset_type=st.text(max_size=20))
def test_sharing_filters_R_SH_1(client, fuzz, q, status, shared, page, folder, asset_type):
    client.force_login(fuzz.admin_b)
    params = {"q": q, "status": status, "shared": shared, "page": page, "folder": folder}
    get_ok(client, reverse("sharing:index"), params, fuzz.secrets_of_a)
    get_ok(client, reverse("sharing:directory"), params, fuzz.secrets_of_a)
    if asset_type and "/" not in asset_type:
        get_ok(client, reverse("sharing:assets", args=[asset_type]), params, fuzz.secrets_of_a)
    client.force_login(fuzz.admin_a)
    get_ok(client, reverse("sharing:share_drawer", args=[fuzz.coupon.pk]),
           {"q": q, "scope_type": status, "accounts": [folder, fuzz.b_account.pk], "folders": [page]}, [])


# --- Regressions found by the fuzzing above, pinned with the exact input --------------------------------------

def test_posted_ids_that_are_not_numbers_are_404_not_500_R_ORG_6(client, fuzz):
    """'abc' as a message or contract id was a ValueError (500)."""
    client.force_login(fuzz.admin_a)
    for value in ("abc", "", "1.5", "9" * 30, "-1"):
        assert refused(client, "post", reverse("console:messages"), {"message": value}).status_code == 404
        assert refused(client, "post", reverse("console:contracts"), {"contract": value}).status_code == 404


def test_huge_ids_name_nothing_instead_of_overflowing_R_ORG_6(client, fuzz):
    """A 30-digit account or folder id was an OverflowError (500) on SQLite."""
    client.force_login(fuzz.admin_a)
    huge = "9" * 30
    assert refused(client, "post", reverse("console:alert_batch"),
                   {"accounts": [fuzz.secret.pk, huge], "enabled": "on", "threshold": "1.00"}).status_code == 404
    refused(client, "post", reverse("sharing:rules"), {"asset_type": "coupon", "scope_type": "folders",
                                                       "folders": [huge], "enabled": "on"})
    refused(client, "post", reverse("sharing:share_drawer", args=[fuzz.coupon.pk]),
            {"scope_type": "accounts", "accounts": [huge], "action": "share"})


def test_an_empty_transfer_step_does_not_confirm_R_TR_8(client, fuzz):
    """A transfer posted with step '' moved money without the confirmation step."""
    client.force_login(fuzz.admin_a)
    response = refused(client, "post", reverse("console:transfer_drawer", args=[fuzz.secret.pk]),
                       transfer_data(fuzz, step=""), error_shown=False)
    assert response.status_code == 200 and b'name="amount"' in response.content


@pytest.mark.parametrize("name", ["\x00", "a\x00b", "\x01\x02\x1f", "Ops\x7f"])
def test_control_characters_are_refused_with_400_R_ORG_3(client, fuzz, name):
    """A folder named NUL was created on SQLite and a 500 on PostgreSQL; searches too."""
    client.force_login(fuzz.admin_a)
    response = refused(client, "post", reverse("sharing:folder_create"), {"parent": fuzz.root_a.pk, "name": name})
    assert response.status_code == 400 and b"control characters" in response.content
    assert refused(client, "get", reverse("console:accounts"), {"q": name}).status_code == 400
    assert refused(client, "get", reverse("sharing:directory"), {"q": name}).status_code == 400


def test_errors_that_had_no_place_are_shown(client, fuzz):
    """An empty sign-in, a drawer without its idempotency key and a rule of no asset type said nothing."""
    response = client.post(reverse("login"), {"username": "", "password": ""})
    assert response.content.count(b"This field is required.") == 2
    client.force_login(fuzz.admin_a)
    response = refused(client, "post", reverse("console:credit_drawer", args=[fuzz.secret.pk]),
                       {"new_limit": "10.00", "idempotency_key": ""})
    assert b'data-field-error="idempotency_key"' in response.content
    refused(client, "post", reverse("sharing:rules"), {"asset_type": "", "scope_type": "none"})


# --- Uploaded usage files (the import screen and manage.py import_usage, R-US-1) -----------------------------

USAGE_HEADER = "record_id,account_id,product_code,region,instance_type,quantity,unit_price,usage_hour,billed_at\n"


def usage_csv(account, *, product="ecs", region="cn-hangzhou", quantity="2", record="r-1") -> bytes:
    return (USAGE_HEADER + f"{record},{account.account_id},{product},{region},,{quantity},1.50,"
                           "2025-06-01 10:00,2025-06-01 11:00\n").encode()


def xlsx_of(rows) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    for r in rows:
        book.active.append(r)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(client, name, content, **extra):
    return refused(client, "post", reverse("sharing:usage_import"),
                   {"file": SimpleUploadedFile(name, content)}, **extra)


def import_error(response) -> str:
    match = re.search(rb'data-testid="import-error">([^<]*)<', response.content)
    return match.group(1).decode() if match else ""


@pytest.mark.parametrize("name, content, message", [
    ("usage.pdf", b"%PDF-1.4 ...", "Upload a .csv or .xlsx file."),
    ("usage.exe", b"MZ\x90\x00", "Upload a .csv or .xlsx file."),
    ("usage", b"record_id\n", "Upload a .csv or .xlsx file."),
    ("usage.csv", b"\xff\xfe\x00\x00\x80\x81 not utf-8", "could not be read as CSV"),
    ("usage.xlsx", USAGE_HEADER.encode(), "could not be read as Excel"),
    ("usage.xlsx", b"PK\x03\x04 truncated zip", "could not be read as Excel"),
    ("usage.xlsx", b"", "could not be read as Excel"),
    ("usage.csv", b"", "lacks the column"),
    ("usage.csv", b"a,b,c\n1,2,3\n", "lacks the column"),
])
def test_usage_files_of_the_wrong_type_or_malformed_are_refused_with_why_R_US_1(client, fuzz, name, content, message):
    client.force_login(fuzz.admin_a)
    response = upload(client, name, content)
    assert response.status_code == 200
    assert message in import_error(response)


def test_a_zip_that_is_not_a_workbook_is_refused_R_US_1(client, fuzz):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    client.force_login(fuzz.admin_a)
    assert "could not be read as Excel" in import_error(upload(client, "usage.xlsx", out.getvalue()))


def test_an_xlsx_formula_is_not_evaluated_R_US_1(client, fuzz):
    """A formula cell in a number column is refused as not a number, never computed."""
    rows = [USAGE_HEADER.strip().split(","),
            ["r-1", fuzz.secret.account_id, "ecs", "cn-hangzhou", "", "=1+1", "1.50", "2025-06-01 10:00",
             "2025-06-01 11:00"]]
    client.force_login(fuzz.admin_a)
    response = upload(client, "usage.xlsx", xlsx_of(rows))
    assert "nothing of this file was imported" in import_error(response)
    assert b"quantity" in response.content


def test_a_file_over_20_mb_is_refused_before_it_is_read_R_US_1(client, fuzz, tmp_path):
    big = usage_csv(fuzz.secret) + b"#" * (MAX_FILE_BYTES + 1)
    client.force_login(fuzz.admin_a)
    assert import_error(upload(client, "usage.csv", big)) == MSG_FILE_TOO_BIG
    path = tmp_path / "usage.csv"
    path.write_bytes(big)
    before = snapshot()
    with pytest.raises(CommandError, match="larger than 20 MB"):
        call_command("import_usage", str(path))
    assert diff(before, snapshot()) == []


@pytest.mark.parametrize("name, content, message", [
    ("usage.pdf", b"%PDF", "Upload a .csv or .xlsx file."),
    ("usage.xlsx", b"PK\x03\x04 truncated", "could not be read as Excel"),
    ("usage.csv", b"a,b\n1,2\n", "lacks the column"),
])
def test_import_usage_command_refuses_bad_files_and_changes_nothing_R_US_1(fuzz, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    before = snapshot()
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("import_usage", str(path))
    assert diff(before, snapshot()) == []


@FUZZ
@given(content=st.one_of(st.binary(max_size=3000), st.text(max_size=2000).map(str.encode)),
       name=st.sampled_from(["usage.csv", "usage.xlsx", "usage.CSV", "usage.xlsx.csv", "usage.txt"]))
def test_random_files_never_break_the_import_R_US_1(client, fuzz, content, name):
    client.force_login(fuzz.admin_a)
    upload(client, name, content)


def could_be_valid_cell(column, cell, fuzz) -> bool:
    """Leave out the junk that happens to be valid (\"1\" as a quantity, a real date, the account's own id)."""
    text = cell.strip()
    if column == "account_id":
        return text == fuzz.secret.account_id
    if column == "usage_hour":
        return parse_datetime(text.replace("/", "-")) is not None
    try:
        return Decimal(text).is_finite() and Decimal(text) > 0
    except InvalidOperation:
        return False


@FUZZ
@given(cell=st.one_of(junk_text(max_size=80), st.sampled_from(["=1+1", "=HYPERLINK(\"http://x\",\"y\")", "-1",
                                                                "@SUM(A1)", "\t=1", "\r=1"])),
       column=st.sampled_from(["quantity", "usage_hour", "account_id"]))
def test_bad_cells_are_refused_by_row_R_US_1(client, fuzz, cell, column):
    """A bad number, date or account in one cell: the row is reported and nothing is imported."""
    assume(not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", cell))  # a worksheet cannot even hold these
    assume(not could_be_valid_cell(column, cell, fuzz))
    values = {"record_id": "r-1", "account_id": fuzz.secret.account_id, "product_code": "ecs",
              "region": "cn-hangzhou", "instance_type": "", "quantity": "2", "unit_price": "1.50",
              "usage_hour": "2025-06-01 10:00", "billed_at": "2025-06-01 11:00", column: cell}
    client.force_login(fuzz.admin_a)
    columns = USAGE_HEADER.strip().split(",")
    response = upload(client, "usage.xlsx", xlsx_of([columns, [values[c] for c in columns]]))
    if response.status_code == 200:
        assert import_error(response)


def test_formula_text_in_names_is_stored_as_plain_text_and_shown_escaped_R_US_1(client, fuzz):
    """CSV injection in a text column: kept as the literal text (a product code is text, not a formula) and shown
    HTML-escaped; the export neutralises such text (``test_export_neutralises_formulas``)."""
    client.force_login(fuzz.admin_a)
    product = "=HYPERLINK(\"\"http://x\"\";\"\"<b>y</b>\"\")"
    content = usage_csv(fuzz.secret, product=f'"{product}"', region="@SUM(A1)")
    response = client.post(reverse("sharing:usage_import"), {"file": SimpleUploadedFile("usage.csv", content)},
                           follow=True)
    assert response.status_code == 200
    record = UsageRecord.objects.get(record_id="r-1")
    assert record.product_code == '=HYPERLINK("http://x";"<b>y</b>")' and record.region == "@SUM(A1)"
    assert b"<b>y</b>" not in response.content and b"&lt;b&gt;y&lt;/b&gt;" in response.content


# --- Export: text cells never become formulas (R-UAM-4) -------------------------------------------------------

FORMULAS = ["=1+2", "+1", "-3", "@SUM(A1)", "\t=1+2", "\r=1+2", "=HYPERLINK(\"http://x\")", "=cmd|' /C calc'!A0"]


def test_export_neutralises_formulas_in_account_and_folder_names_R_UAM_4(client, fuzz):
    import openpyxl

    from tests.factories import make_account

    for i, text in enumerate(FORMULAS):
        folder = services.folder_create(actor=fuzz.admin_a, parent=fuzz.root_a, name=text.strip()[:24] + f" {i}")
        make_account(enterprise=fuzz.enterprise_a, name=text, folder=folder)
    client.force_login(fuzz.admin_a)
    response = client.get(reverse("console:accounts_export"))
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    names = {r[1] for r in rows}
    folders = {r[2] for r in rows}
    for text in FORMULAS:
        assert "'" + text.replace("\r", "\n") in names, text  # XML reads a CR back as LF
    for cell in names | folders:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert {f"'{t.strip()[:24]} {i}" for i, t in enumerate(FORMULAS)} <= folders
