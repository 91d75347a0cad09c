"""The resource directory and membership (R-ORG-1 to R-ORG-4, R-ORG-6)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import selectors, services
from accounts import messages
from accounts.models import Account, Folder, Invitation, User
from accounts.signals import membership_changed
from core.errors import DomainError, PermissionDenied
from core.models import Message
from tests.books import assert_refused, books
from tests.factories import effective_contract, make_account, make_enterprise, make_user


@pytest.fixture
def signals():
    """Every ``membership_changed`` sent during the test."""
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    membership_changed.connect(receiver)
    yield received
    membership_changed.disconnect(receiver)


def root(enterprise):
    return selectors.root_folder(enterprise)


# --- R-ORG-1, R-ORG-2: the enterprise and its management account ---

def test_enabling_the_center_makes_the_management_account_and_root_folder_R_ORG_1_R_ORG_2(db):
    ma = make_account(company_id="91310000MA0000XYZ")
    enterprise = services.enterprise_enable(actor=None, management_account=ma, name="Globex")
    ma.refresh_from_db()
    assert (enterprise.company_id, enterprise.eac_enabled) == ("91310000MA0000XYZ", True)
    assert (ma.enterprise, ma.is_management, ma.folder) == (enterprise, True, root(enterprise))
    assert root(enterprise).depth == 0 and root(enterprise).path == f"/{root(enterprise).pk}/"


def test_only_a_verified_company_account_enables_the_center_R_ORG_1(db):
    unverified = make_account(company_id="")
    with pytest.raises(DomainError) as info:
        services.enterprise_enable(actor=None, management_account=unverified, name="X")
    assert "real-name verification" in info.value.message
    ent_, ma, admin = make_enterprise()
    member = make_account(enterprise=ent_)
    assert_refused(lambda: services.enterprise_enable(actor=None, management_account=member, name="Y"),
                   messages.MSG_ALREADY_MEMBER.format(account=member.account_id))


# --- R-ORG-3: at most 5 levels, names 1 to 24 characters, unique among siblings ---

def test_folders_nest_at_most_five_levels_below_the_root_R_ORG_3(ent):
    enterprise, ma, admin = ent
    parent = root(enterprise)
    for level in range(1, 6):
        parent = services.folder_create(actor=admin, parent=parent, name=f"Level {level}")
        assert parent.depth == level
    assert parent.path.count("/") == 7  # /root/1/2/3/4/5/
    err = assert_refused(lambda: services.folder_create(actor=admin, parent=parent, name="Level 6"),
                         messages.MSG_FOLDER_DEPTH, rule="R-ORG-3")
    assert err.field == "parent"


@pytest.mark.parametrize("name, stored", [("a", "a"), ("x" * 24, "x" * 24), ("  Finance  ", "Finance")])
def test_folder_names_of_1_to_24_characters_accepted_R_ORG_3(ent, name, stored):
    enterprise, ma, admin = ent
    assert services.folder_create(actor=admin, parent=root(enterprise), name=name).name == stored


@pytest.mark.parametrize("name", ["", "   ", None, "x" * 25])
def test_folder_names_outside_1_to_24_characters_refused_R_ORG_3(ent, name):
    enterprise, ma, admin = ent
    err = assert_refused(lambda: services.folder_create(actor=admin, parent=root(enterprise), name=name),
                         messages.MSG_FOLDER_NAME, rule="R-ORG-3")
    assert err.field == "name"


def test_folder_names_unique_among_siblings_only_R_ORG_3(ent):
    enterprise, ma, admin = ent
    sales = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    assert_refused(lambda: services.folder_create(actor=admin, parent=root(enterprise), name="Sales"),
                   messages.MSG_FOLDER_NAME_TAKEN.format(name="Sales"), rule="R-ORG-3")
    nested = services.folder_create(actor=admin, parent=sales, name="Sales")  # a cousin may share the name
    assert nested.parent == sales
    east = services.folder_create(actor=admin, parent=root(enterprise), name="East")
    assert_refused(lambda: services.folder_rename(actor=admin, folder=east, name="Sales"),
                   messages.MSG_FOLDER_NAME_TAKEN.format(name="Sales"))


def test_subtree_selectors_follow_the_materialized_path_R_ORG_3(ent):
    enterprise, ma, admin = ent
    sales = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    east = services.folder_create(actor=admin, parent=sales, name="East")
    hr = services.folder_create(actor=admin, parent=root(enterprise), name="HR")
    in_sales, in_east, in_hr = (make_account(enterprise=enterprise, folder=f) for f in (sales, east, hr))
    assert set(selectors.accounts_in_subtree(sales)) == {in_sales, in_east}
    assert set(selectors.folder_subtree(sales)) == {sales, east}
    assert set(selectors.accounts_in_subtree(root(enterprise))) == {ma, in_sales, in_east, in_hr}
    assert selectors.folder_account_counts(enterprise) == {root(enterprise).pk: 1, sales.pk: 1, east.pk: 1,
                                                          hr.pk: 1}


# --- R-ORG-4: create, rename, delete only when empty ---

def test_folder_rename_R_ORG_4(ent):
    enterprise, ma, admin = ent
    folder = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    services.folder_rename(actor=admin, folder=folder, name="Sales EMEA")
    assert Folder.objects.get(pk=folder.pk).name == "Sales EMEA"
    assert_refused(lambda: services.folder_rename(actor=admin, folder=root(enterprise), name="Top"),
                   messages.MSG_FOLDER_ROOT)
    assert_refused(lambda: services.folder_rename(actor=admin, folder=folder, name="y" * 25), messages.MSG_FOLDER_NAME)


def test_folder_deleted_only_when_empty_R_ORG_4(ent):
    enterprise, ma, admin = ent
    sales = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    east = services.folder_create(actor=admin, parent=sales, name="East")
    assert_refused(lambda: services.folder_delete(actor=admin, folder=sales),
                   messages.MSG_FOLDER_NOT_EMPTY.format(name="Sales", folders=1, accounts=0), rule="R-ORG-4")
    account = make_account(enterprise=enterprise, folder=east)
    assert_refused(lambda: services.folder_delete(actor=admin, folder=east),
                   messages.MSG_FOLDER_NOT_EMPTY.format(name="East", folders=0, accounts=1))
    services.accounts_move(actor=admin, accounts=[account], folder=root(enterprise))
    services.folder_delete(actor=admin, folder=east)
    services.folder_delete(actor=admin, folder=sales)
    assert list(Folder.objects.filter(enterprise=enterprise)) == [root(enterprise)]
    assert_refused(lambda: services.folder_delete(actor=admin, folder=root(enterprise)), messages.MSG_FOLDER_ROOT)


def test_folder_with_an_open_invitation_is_not_empty_R_ORG_4(ent):
    enterprise, ma, admin = ent
    sales = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    outsider = make_account(company_id=enterprise.company_id)
    services.invitation_create(actor=admin, enterprise=enterprise, account_id=outsider.account_id, folder=sales)
    with pytest.raises(DomainError):
        services.folder_delete(actor=admin, folder=sales)


def test_directory_changes_only_by_the_enterprise_administrator_R_ORG_6(ent):
    enterprise, ma, admin = ent
    member = make_user(account=make_account(enterprise=enterprise))
    other_admin = make_enterprise(name="Other")[2]
    folder = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    for actor in (member, other_admin, None):
        assert_refused(lambda: services.folder_create(actor=actor, parent=root(enterprise), name="X"),
                       messages.MSG_NOT_ADMIN)
        assert_refused(lambda: services.folder_rename(actor=actor, folder=folder, name="X"), messages.MSG_NOT_ADMIN)
        assert_refused(lambda: services.folder_delete(actor=actor, folder=folder), messages.MSG_NOT_ADMIN)
        assert_refused(lambda: services.accounts_move(actor=actor, accounts=[ma], folder=folder),
                       messages.MSG_NOT_ADMIN)


# --- R-ORG-4: invitations ---

@pytest.fixture
def outsider(ent):
    enterprise, ma, admin = ent
    account = make_account(company_id=enterprise.company_id, name="Newcomer")
    return account, make_user(account=account)


def test_invitation_accepted_joins_the_folder_R_ORG_4(ent, outsider, signals):
    enterprise, ma, admin = ent
    account, user = outsider
    sales = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    invitation = services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id,
                                            folder=sales)
    assert invitation.status == Invitation.Status.INVITED
    assert invitation.expires_at - invitation.created_at == timedelta(days=14)
    assert Message.objects.filter(account=account, kind="invitation").exists()
    services.invitation_respond(actor=user, invitation=invitation, accept=True)
    account.refresh_from_db()
    invitation.refresh_from_db()
    assert (account.enterprise, account.folder, invitation.status) == (enterprise, sales, "accepted")
    assert signals[-1]["account"].pk == account.pk
    assert (signals[-1]["old_enterprise_id"], signals[-1]["new_folder"]) == (None, sales)


def test_invitation_declined_leaves_the_account_outside_R_ORG_4(ent, outsider):
    enterprise, ma, admin = ent
    account, user = outsider
    invitation = services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id)
    services.invitation_respond(actor=user, invitation=invitation, accept=False)
    account.refresh_from_db()
    invitation.refresh_from_db()
    assert (account.enterprise, invitation.status) == (None, "declined")
    assert_refused(lambda: services.invitation_respond(actor=user, invitation=invitation, accept=True),
                   messages.MSG_INVITATION_CLOSED.format(status="declined"))
    # A new invitation can be sent after a decline.
    services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id)


def test_invitation_expires_after_14_days_R_ORG_4(ent, outsider):
    enterprise, ma, admin = ent
    account, user = outsider
    invitation = services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(DomainError) as info:
        services.invitation_respond(actor=user, invitation=invitation, accept=True)
    assert info.value.message == messages.MSG_INVITATION_CLOSED.format(status="expired")
    account.refresh_from_db()
    invitation.refresh_from_db()
    assert account.enterprise is None
    assert invitation.status == Invitation.Status.EXPIRED  # the expiry is kept, not rolled back with the refusal


def test_expired_invitations_are_marked_by_expire_invitations_R_ORG_4(ent, outsider):
    enterprise, ma, admin = ent
    account, user = outsider
    invitation = services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id)
    assert services.expire_invitations(now=timezone.now() + timedelta(days=13, hours=23)) == 0
    assert services.expire_invitations(now=timezone.now() + timedelta(days=14, seconds=1)) == 1
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.EXPIRED


def test_invitation_refusals_R_ORG_4(ent, outsider):
    enterprise, ma, admin = ent
    account, user = outsider
    assert_refused(lambda: services.invitation_create(actor=admin, enterprise=enterprise, account_id="0000"),
                   messages.MSG_UNKNOWN_ACCOUNT.format(account_id="0000"))
    member = make_account(enterprise=enterprise)
    assert_refused(lambda: services.invitation_create(actor=admin, enterprise=enterprise,
                                                      account_id=member.account_id),
                   messages.MSG_ALREADY_MEMBER.format(account=member.account_id))
    invitation = services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id)
    assert_refused(lambda: services.invitation_create(actor=admin, enterprise=enterprise,
                                                      account_id=account.account_id),
                   messages.MSG_ALREADY_INVITED.format(account=account.account_id))
    # Only a user of the invited account answers.
    for actor in (admin, make_user(account=member)):
        with pytest.raises(PermissionDenied):
            services.invitation_respond(actor=actor, invitation=invitation, accept=True)
    other_ent, _, other_admin = make_enterprise(name="Other")
    assert_refused(lambda: services.invitation_create(actor=other_admin, enterprise=enterprise,
                                                      account_id=account.account_id), messages.MSG_NOT_ADMIN)


def test_accepting_after_joining_another_enterprise_is_refused_R_ORG_4(ent, outsider):
    enterprise, ma, admin = ent
    account, user = outsider
    other_ent, _, other_admin = make_enterprise(name="Other", company_id="91440000OTHERXX01")
    first = services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id)
    second = services.invitation_create(actor=other_admin, enterprise=other_ent, account_id=account.account_id)
    services.invitation_respond(actor=user, invitation=second, accept=True)
    assert_refused(lambda: services.invitation_respond(actor=user, invitation=first, accept=True),
                   messages.MSG_ALREADY_MEMBER.format(account=account.account_id))


# --- R-ORG-4: move and remove ---

def test_move_one_or_many_accounts_R_ORG_4(ent, signals):
    enterprise, ma, admin = ent
    sales = services.folder_create(actor=admin, parent=root(enterprise), name="Sales")
    a, b = make_account(enterprise=enterprise), make_account(enterprise=enterprise)
    moved = services.accounts_move(actor=admin, accounts=[a, b], folder=sales)
    assert {m.pk for m in moved} == {a.pk, b.pk}
    assert set(Account.objects.filter(folder=sales)) == {a, b}
    assert [(s["old_folder"], s["new_folder"]) for s in signals] == [(root(enterprise), sales)] * 2
    # Moving into the folder it is already in changes nothing.
    assert services.accounts_move(actor=admin, accounts=[a], folder=sales) == []
    assert_refused(lambda: services.accounts_move(actor=admin, accounts=[], folder=sales), messages.MSG_NO_ACCOUNTS)


def test_move_of_another_enterprise_account_refused_R_ORG_4_R_ORG_6(ent):
    enterprise, ma, admin = ent
    foreign = make_account(enterprise=make_enterprise(name="Other")[0])
    assert_refused(lambda: services.accounts_move(actor=admin, accounts=[foreign], folder=root(enterprise)),
                   messages.MSG_NOT_IN_ENTERPRISE.format(account=foreign.account_id))


def test_remove_an_account_from_the_directory_R_ORG_4(ent, signals):
    enterprise, ma, admin = ent
    a = make_account(enterprise=enterprise)
    services.alert_set(actor=admin, account=a, enabled=True, threshold="10.00")
    services.account_remove(actor=admin, account=a)
    a.refresh_from_db()
    assert (a.enterprise, a.folder, a.alert_enabled) == (None, None, False)
    assert (signals[-1]["old_enterprise_id"], signals[-1]["new_folder"]) == (enterprise.pk, None)
    assert a not in selectors.visible_accounts(admin)


def test_remove_refusals_R_ORG_4(ent):
    enterprise, ma, admin = ent
    assert_refused(lambda: services.account_remove(actor=admin, account=ma), messages.MSG_REMOVE_MANAGEMENT)
    effective_contract(enterprise, admin, "100.00")
    a = make_account(enterprise=enterprise)
    services.credit_limit_set(actor=admin, account=a, new_limit="10.00")
    assert_refused(lambda: services.account_remove(actor=admin, account=a),
                   messages.MSG_REMOVE_CREDIT.format(account=a.account_id, limit="10.00"))
    assert_refused(lambda: services.account_remove(actor=make_user(account=a), account=a), messages.MSG_NOT_ADMIN)


# --- R-ORG-5: another company's account may sit in the directory ---

def test_other_company_account_can_join_but_fund_operations_are_refused_R_ORG_5(ent):
    enterprise, ma, admin = ent
    account = make_account(company_id="91440000OTHER0002")
    user = make_user(account=account)
    invitation = services.invitation_create(actor=admin, enterprise=enterprise, account_id=account.account_id)
    services.invitation_respond(actor=user, invitation=invitation, accept=True)
    account.refresh_from_db()
    assert account.enterprise == enterprise and not account.same_company_as_enterprise
    services.top_up(actor=None, account=ma, amount="100.00")
    assert_refused(lambda: services.transfer_create(actor=admin, payer=ma, payee=account, amount="1.00", remark="x"),
                   messages.MSG_OTHER_COMPANY.format(account=account.account_id), rule="R-ORG-5")


# --- R-ORG-6: who sees what ---

def test_visible_accounts_by_role_R_ORG_6(ent):
    enterprise, ma, admin = ent
    a, b = make_account(enterprise=enterprise), make_account(enterprise=enterprise)
    other_ent, other_ma, other_admin = make_enterprise(name="Other")
    assert set(selectors.visible_accounts(admin)) == {ma, a, b}
    assert list(selectors.visible_accounts(make_user(account=a))) == [a]
    assert list(selectors.visible_accounts(other_admin)) == [other_ma]
    assert list(selectors.visible_accounts(make_user(staff=True))) == []
    assert make_user(account=a, role=User.Role.ENTERPRISE_ADMIN).is_enterprise_admin is False
    assert admin.is_enterprise_admin and not admin.is_account_manager


def test_refused_directory_change_writes_nothing(ent):
    enterprise, ma, admin = ent
    before = books()
    with pytest.raises(DomainError):
        services.folder_create(actor=admin, parent=root(enterprise), name="")
    assert books() == before
