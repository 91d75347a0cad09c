"""Two enterprises and every role, for the access matrix and the bad-input tests (issue 5, Reliability 4 and 5).

Enterprise A (Acme): its management account and administrator, a member account with its member user, and a
secret account in a folder, with money, a coupon of the management account, a pending credit contract and a
message. Enterprise B (Globex): its administrator and one account. And an account manager (staff).
The secret strings of A (``world.secrets``) must never appear in a body served to B's administrator.
"""

import io
import zipfile
from datetime import datetime
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.utils import timezone

from accounts import services
from accounts.models import Folder, User
from core.models import Message
from sharing import services as sharing_services
from sharing.models import AssetType
from tests.factories import fund, make_account, make_enterprise, make_manager, make_user

# Tables that change without any business change: sign-in bookkeeping and sessions.
NOT_SNAPSHOTTED = {"core.loginfailure"}
VOLATILE_FIELDS = {"last_login"}


def snapshot() -> dict:
    """Every row of every table of the product (accounts, core, sharing), ordered by primary key."""
    state = {}
    for label in ("accounts", "core", "sharing"):
        for model in apps.get_app_config(label).get_models():
            if model._meta.label_lower in NOT_SNAPSHOTTED:
                continue
            rows = list(model.objects.order_by("pk").values())
            state[model._meta.label_lower] = [{k: v for k, v in r.items() if k not in VOLATILE_FIELDS} for r in rows]
    return state


def diff(before: dict, after: dict) -> list[str]:
    """The tables whose rows differ, with the first difference of each (for a readable failure)."""
    out = []
    for table in before:
        if before[table] != after[table]:
            old, new = before[table], after[table]
            if len(old) != len(new):
                out.append(f"{table}: {len(old)} rows -> {len(new)} rows")
            else:
                first = next((o, n) for o, n in zip(old, new) if o != n)
                out.append(f"{table}: {first[0]} -> {first[1]}")
    return out


def body_text(response) -> bytes:
    """The body as bytes; a streamed .xlsx is unzipped so its cells can be searched too."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    if content[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return b"".join(archive.read(name) for name in archive.namelist())
    return content


def build_world() -> SimpleNamespace:
    enterprise_a, ma, admin_a = make_enterprise(name="Acme")
    root_a = Folder.objects.get(enterprise=enterprise_a, parent__isnull=True)
    hidden = services.folder_create(actor=admin_a, parent=root_a, name="Hidden Folder Zq")
    own = make_account(enterprise=enterprise_a, name="Member Own Account")
    member = make_user(username="member-a", account=own, role=User.Role.MEMBER)
    secret = fund(make_account(enterprise=enterprise_a, name="Secret Account Xy", folder=hidden), "1234.56")
    fund(ma, "50000.00")
    fund(own, "300.00")
    contract = services.credit_contract_grant(actor=None, enterprise=enterprise_a, total_credit_limit="9000.00")
    coupon = sharing_services.asset_provision(
        actor=None, owner=ma, asset_type=AssetType.COUPON, name="Secret Coupon Wv", face_value="77.00",
        valid_from=timezone.make_aware(datetime(2025, 1, 1)), valid_to=timezone.make_aware(datetime(2099, 1, 1)))
    message = Message.objects.create(account=secret, kind="alert", title="Secret message Uv", body="for Secret only",
                                     created_at=timezone.now())
    enterprise_b, ma_b, admin_b = make_enterprise(name="Globex")
    b_account = fund(make_account(enterprise=enterprise_b, name="Globex Own"), "10.00")
    root_b = Folder.objects.get(enterprise=enterprise_b, parent__isnull=True)
    for account in (ma, own, secret):
        account.refresh_from_db()
    return SimpleNamespace(
        enterprise_a=enterprise_a, ma=ma, admin_a=admin_a, root_a=root_a, hidden=hidden, own=own, member=member,
        secret=secret, contract=contract, coupon=coupon, message=message,
        enterprise_b=enterprise_b, ma_b=ma_b, admin_b=admin_b, b_account=b_account, root_b=root_b,
        manager=make_manager("am-staff"),
        # What only A's administrator may see (the contract number too: members of A see it read-only, R-CR-1).
        secrets_of_a=[secret.name, secret.account_id, hidden.name, coupon.asset_id, coupon.name, message.title,
                      contract.contract_number],
        # What a member of A may not see: the other accounts of its enterprise and their assets.
        secrets_of_others=[secret.name, secret.account_id, hidden.name, coupon.asset_id, coupon.name,
                           message.title],
    )


@pytest.fixture
def world(db):
    return build_world()
