"""Equity asset sharing (SPEC section 7): assets, scopes, grants, rules, and following membership."""

import pytest
from django.db import IntegrityError, transaction

from accounts import services as account_services
from accounts.models import Account, Invitation, User
from core.errors import DomainError, PermissionDenied
from sharing import selectors, services
from sharing.models import Asset, AssetType, Grant, ScopeType, UncoveredAccount
from tests.factories import make_account, make_enterprise, make_user

from .helpers import at, coupon, folder, provision


def open_recipients(asset):
    return set(Grant.objects.filter(asset=asset, effective_to__isnull=True).values_list("account_id", flat=True))


# --- R-SH-1: assets ---

def test_each_asset_type_has_its_typed_fields_R_SH_1(ent):
    enterprise, ma, admin = ent
    sp = provision(ma, AssetType.SAVINGS_PLAN)
    ri = provision(ma, AssetType.RESERVED_INSTANCE)
    scu = provision(ma, AssetType.SCU_PACKAGE)
    cp = coupon(ma, "80.00")
    assert sp.asset_id.startswith("SP-") and sp.hourly_commitment == 10 and sp.products == ["ecs"]
    assert (ri.instance_type, ri.region, ri.instance_count) == ("ecs.g7.large", "cn-hangzhou", 2)
    assert scu.capacity_gb == 100 and scu.products == ["nas", "oss"]
    assert cp.face_value == cp.remaining_value == 80
    assert all(a.owner == ma and a.status == Asset.Status.ACTIVE for a in (sp, ri, scu, cp))


@pytest.mark.parametrize("change", [
    {"instance_count": 3},            # a coupon with a reserved instance's field
    {"remaining_value": "90.00"},      # more remaining than face value
    {"face_value": None},
])
def test_coupon_fields_are_held_by_the_database_R_SH_1(ent, change):
    enterprise, ma, admin = ent
    cp = coupon(ma, "80.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Asset.objects.filter(pk=cp.pk).update(**change)


def test_savings_plan_needs_commitment_and_rate_below_1_in_database_R_SH_1(ent):
    enterprise, ma, admin = ent
    sp = provision(ma, AssetType.SAVINGS_PLAN)
    with pytest.raises(IntegrityError), transaction.atomic():
        Asset.objects.filter(pk=sp.pk).update(discount_rate=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Asset.objects.filter(pk=sp.pk).update(hourly_commitment=None)


def test_provision_refuses_bad_typed_fields_with_the_field_R_SH_1(ent):
    enterprise, ma, admin = ent
    with pytest.raises(DomainError) as exc:
        provision(ma, AssetType.SAVINGS_PLAN, discount_rate="1.5")
    assert exc.value.field == "discount_rate"
    with pytest.raises(DomainError) as exc:
        provision(ma, AssetType.RESERVED_INSTANCE, instance_count="0")
    assert exc.value.field == "instance_count"
    with pytest.raises(DomainError) as exc:
        provision(ma, AssetType.COUPON, face_value="-5")
    assert exc.value.field == "face_value"
    assert not Asset.objects.exists()


def test_only_one_open_grant_per_asset_and_account_in_database_R_SH_6(ent, clock):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    cp = coupon(ma)
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    with pytest.raises(IntegrityError), transaction.atomic():
        Grant.objects.create(asset=cp, account=b, effective_from=clock.now)


# --- R-SH-2, R-SH-6, R-SH-7: scope and grants ---

def test_share_with_accounts_grants_from_now_R_SH_2_R_SH_6(ent, clock):
    enterprise, ma, admin = ent
    b, c = make_account(enterprise=enterprise), make_account(enterprise=enterprise)
    cp = coupon(ma)
    clock.set(at(10))
    counts = services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b, c])
    assert counts == {"added": 2, "ended": 0, "kept": 0}
    grants = list(selectors.share_history(cp))
    assert {(g.account_id, g.effective_from, g.effective_to) for g in grants} == {(b.pk, at(10), None),
                                                                                 (c.pk, at(10), None)}
    cp.refresh_from_db()
    assert cp.scope_type == ScopeType.ACCOUNTS


def test_resharing_keeps_unchanged_grants_and_ends_removed_ones_R_SH_7(ent, clock):
    enterprise, ma, admin = ent
    b, c, d = (make_account(enterprise=enterprise) for _ in range(3))
    cp = coupon(ma)
    clock.set(at(10))
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b, c])
    clock.set(at(12))
    counts = services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[c, d])
    assert counts == {"added": 1, "ended": 1, "kept": 1}
    history = {(g.account_id, g.effective_from, g.effective_to) for g in selectors.share_history(cp)}
    assert history == {(b.pk, at(10), at(12)), (c.pk, at(10), None), (d.pk, at(12), None)}


def test_folder_scope_covers_the_subtree_owner_excluded_R_SH_2(ent, clock):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    ops_eu = folder(enterprise, admin, "EU", parent=ops)
    sales = folder(enterprise, admin, "Sales")
    a = make_account(enterprise=enterprise, folder=ops)
    b = make_account(enterprise=enterprise, folder=ops_eu)
    make_account(enterprise=enterprise, folder=sales)
    cp = coupon(a)
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[ops])
    assert open_recipients(cp) == {b.pk}  # a is the owner: excluded


def test_folder_scope_follows_membership_at_once_R_SH_2_R_SH_7(ent, clock):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    sales = folder(enterprise, admin, "Sales")
    b = make_account(enterprise=enterprise, folder=sales)
    cp = coupon(ma)
    clock.set(at(10))
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[ops])
    assert open_recipients(cp) == set()
    clock.set(at(11))
    account_services.accounts_move(actor=admin, accounts=[b], folder=ops)  # joins: receives at 11:00
    assert open_recipients(cp) == {b.pk}
    clock.set(at(12))
    account_services.accounts_move(actor=admin, accounts=[b], folder=sales)  # leaves: ends at 12:00
    assert open_recipients(cp) == set()
    assert [(g.effective_from, g.effective_to) for g in selectors.share_history(cp)] == [(at(11), at(12))]


def test_accepted_invitation_into_a_shared_folder_receives_the_asset_R_SH_2(ent, clock):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    cp = coupon(ma)
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[ops])
    outsider = make_account(company_id=enterprise.company_id)
    user = make_user(account=outsider)
    invitation = account_services.invitation_create(actor=admin, enterprise=enterprise, account_id=outsider.account_id,
                                                    folder=ops)
    account_services.invitation_respond(actor=user, invitation=invitation, accept=True)
    assert open_recipients(cp) == {outsider.pk}
    assert Invitation.objects.get(pk=invitation.pk).status == Invitation.Status.ACCEPTED


def test_removed_account_loses_every_grant_of_the_enterprise_R_SH_7(ent, clock):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    b = make_account(enterprise=enterprise, folder=ops)
    by_folder, by_account = coupon(ma), coupon(ma)
    services.share_asset(actor=admin, asset=by_folder, scope_type=ScopeType.FOLDERS, folders=[ops])
    services.share_asset(actor=admin, asset=by_account, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    clock.set(at(15))
    account_services.account_remove(actor=admin, account=b)
    assert open_recipients(by_folder) == open_recipients(by_account) == set()
    assert set(Grant.objects.filter(account=b).values_list("effective_to", flat=True)) == {at(15)}
    assert selectors.scope_members(by_account)["accounts"] == []


def test_unshare_ends_every_grant_now_R_SH_7(ent, clock):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    cp = coupon(ma)
    clock.set(at(10))
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    clock.set(at(14))
    assert services.unshare_asset(actor=admin, asset=cp)["ended"] == 1
    cp.refresh_from_db()
    assert cp.scope_type == ScopeType.NONE
    assert Grant.objects.get(asset=cp).effective_to == at(14)
    with pytest.raises(DomainError):
        services.unshare_asset(actor=admin, asset=cp)


# --- R-SH-4: at most 100 accounts ---

def test_100_accounts_allowed_and_the_101st_refused_with_the_count_R_SH_4(ent):
    enterprise, ma, admin = ent
    team = folder(enterprise, admin, "Team")
    accounts = [make_account(enterprise=enterprise, folder=team) for _ in range(100)]
    cp = coupon(accounts[0])
    # The owner sits in the folder: the resolved set is 99 accounts.
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[team])
    assert len(open_recipients(cp)) == 99
    extra = make_account(enterprise=enterprise)
    assert services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS,
                                accounts=accounts[1:] + [extra])["added"] == 1  # exactly 100
    another = make_account(enterprise=enterprise)
    with pytest.raises(DomainError) as exc:
        services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS,
                             accounts=accounts[1:] + [extra, another])
    assert exc.value.rule == "R-SH-4"
    assert "reaches 101 accounts" in exc.value.message and "at most 100" in exc.value.message
    assert len(open_recipients(cp)) == 100 and another.pk not in open_recipients(cp)


def test_account_joining_a_full_folder_scope_is_left_uncovered_R_SH_4(ent, clock):
    enterprise, ma, admin = ent
    team = folder(enterprise, admin, "Team")
    for _ in range(100):
        make_account(enterprise=enterprise, folder=team)
    cp = coupon(ma)
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[team])
    late = make_account(enterprise=enterprise)
    clock.set(at(9))
    account_services.accounts_move(actor=admin, accounts=[late], folder=team)
    assert late.pk not in open_recipients(cp) and len(open_recipients(cp)) == 100
    assert [u.account_id for u in selectors.uncovered_accounts(cp)] == [late.pk]
    listed = selectors.asset_list(selectors.enterprise_assets(enterprise.pk), asset_type=AssetType.COUPON).get()
    assert (listed.shared_count, listed.uncovered_count) == (100, 1)
    # Leaving the folder clears the uncovered mark.
    account_services.accounts_move(actor=admin, accounts=[late], folder=selectors.enterprise_folders(enterprise.pk)[0])
    assert not UncoveredAccount.objects.exists()


# --- R-SH-5: same company only ---

def test_account_of_another_company_cannot_receive_R_SH_5(ent):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    same = make_account(enterprise=enterprise, folder=ops)
    other = make_account(enterprise=enterprise, folder=ops, company_id="91440000XX00000001")
    cp = coupon(ma)
    with pytest.raises(DomainError) as exc:
        services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[same, other])
    assert exc.value.rule == "R-SH-5" and other.account_id in exc.value.message
    assert not Grant.objects.exists()
    # A folder scope reaches only the accounts of the same company; the other is listed as excluded.
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.FOLDERS, folders=[ops])
    assert open_recipients(cp) == {same.pk}
    resolution = selectors.resolve_scope(enterprise=enterprise, owner=ma, scope_type=ScopeType.FOLDERS, folders=[ops])
    assert [(a.pk, reason) for a, reason in resolution.excluded] == [(other.pk, selectors.REASON_OTHER_COMPANY)]


# --- R-SH-8: who shares what ---

def test_only_the_enterprise_administrator_shares_R_SH_8(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    member = make_user(account=b)
    cp = coupon(ma)
    with pytest.raises(PermissionDenied):
        services.share_asset(actor=member, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    other_enterprise, other_ma, other_admin = make_enterprise(name="Globex")
    with pytest.raises(PermissionDenied) as exc:
        services.share_asset(actor=other_admin, asset=cp, scope_type=ScopeType.ACCOUNTS,
                             accounts=[make_account(enterprise=other_enterprise)])
    assert exc.value.rule == "R-SH-8"
    assert not Grant.objects.exists()


def test_a_recipient_cannot_share_the_asset_on_R_SH_8(ent):
    enterprise, ma, admin = ent
    b, c = make_account(enterprise=enterprise), make_account(enterprise=enterprise)
    b_user = make_user(account=b, role=User.Role.ENTERPRISE_ADMIN)  # even with the admin role: not the MA
    cp = coupon(ma)
    services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[b])
    with pytest.raises(PermissionDenied):
        services.share_asset(actor=b_user, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[c])
    with pytest.raises(PermissionDenied):
        services.unshare_asset(actor=b_user, asset=cp)
    assert open_recipients(cp) == {b.pk}


def test_cannot_share_with_accounts_of_another_enterprise_R_SH_8(ent):
    enterprise, ma, admin = ent
    other_enterprise, other_ma, _ = make_enterprise(name="Globex")
    cp = coupon(ma)
    with pytest.raises(DomainError):
        services.share_asset(actor=admin, asset=cp, scope_type=ScopeType.ACCOUNTS, accounts=[other_ma])
    assert not Grant.objects.exists()


# --- R-SH-3: automatic sharing rules ---

def test_automatic_rule_applies_to_new_assets_only_R_SH_3(ent, clock):
    enterprise, ma, admin = ent
    ops = folder(enterprise, admin, "Ops")
    b = make_account(enterprise=enterprise, folder=ops)
    c = make_account(enterprise=enterprise)
    before = coupon(ma)
    clock.set(at(8))
    services.auto_rule_set(actor=admin, enterprise=enterprise, asset_type=AssetType.COUPON,
                           scope_type=ScopeType.FOLDERS, folders=[ops])
    clock.set(at(9))
    after = coupon(ma)
    other_type = provision(ma, AssetType.SAVINGS_PLAN)
    assert open_recipients(before) == set()
    assert open_recipients(after) == {b.pk}
    assert Grant.objects.get(asset=after).effective_from == at(9)
    assert open_recipients(other_type) == set()
    after.refresh_from_db()
    assert after.scope_type == ScopeType.FOLDERS
    # Editing the rule does not change assets provisioned before.
    services.auto_rule_set(actor=admin, enterprise=enterprise, asset_type=AssetType.COUPON,
                           scope_type=ScopeType.ACCOUNTS, accounts=[c])
    assert open_recipients(after) == {b.pk}
    assert open_recipients(coupon(ma)) == {c.pk}


def test_disabled_rule_shares_nothing_and_rules_are_admin_only_R_SH_3(ent):
    enterprise, ma, admin = ent
    b = make_account(enterprise=enterprise)
    services.auto_rule_set(actor=admin, enterprise=enterprise, asset_type=AssetType.COUPON,
                           scope_type=ScopeType.ACCOUNTS, accounts=[b], enabled=False)
    assert open_recipients(coupon(ma)) == set()
    with pytest.raises(PermissionDenied):
        services.auto_rule_set(actor=make_user(account=b), enterprise=enterprise, asset_type=AssetType.COUPON,
                               scope_type=ScopeType.ACCOUNTS, accounts=[b])


def test_rule_over_100_accounts_refused_R_SH_3_R_SH_4(ent):
    enterprise, ma, admin = ent
    team = folder(enterprise, admin, "Team")
    for _ in range(101):
        make_account(enterprise=enterprise, folder=team)
    with pytest.raises(DomainError) as exc:
        services.auto_rule_set(actor=admin, enterprise=enterprise, asset_type=AssetType.COUPON,
                               scope_type=ScopeType.FOLDERS, folders=[team])
    assert "101" in exc.value.message


# --- R-MON-3: the coupon count of the account table ---

def test_coupon_count_counts_owned_and_shared_valid_coupons_in_one_query_R_MON_3(ent, clock, django_assert_num_queries):
    enterprise, ma, admin = ent
    b, c = make_account(enterprise=enterprise), make_account(enterprise=enterprise)
    clock.set(at(10))
    coupon(b)                                                   # owned: counts for b
    shared = coupon(ma)
    services.share_asset(actor=admin, asset=shared, scope_type=ScopeType.ACCOUNTS, accounts=[b, c])
    coupon(b, valid_from=at(0), valid_to=at(9))                  # expired: never counts
    ended = coupon(ma)
    services.share_asset(actor=admin, asset=ended, scope_type=ScopeType.ACCOUNTS, accounts=[c])
    services.unshare_asset(actor=admin, asset=ended)             # grant ended: no longer counts
    used_up = coupon(b)
    Asset.objects.filter(pk=used_up.pk).update(remaining_value=0)  # no remaining value: does not count
    with django_assert_num_queries(1):
        counts = dict(selectors.annotate_coupons(Account.objects.filter(enterprise=enterprise))
                      .values_list("pk", "coupons"))
    assert counts == {ma.pk: 2, b.pk: 2, c.pk: 1}
