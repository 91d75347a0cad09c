"""The enterprise and its resource directory (R-ORG-2 to R-ORG-4): folders, invitations, moves, removals."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from core.audit import audit_event
from core.db import atomic_service
from core.errors import DomainError, PermissionDenied
from core.notifications import notify_account

from .. import messages as msg
from .. import selectors
from ..models import Account, Enterprise, Folder, Invitation
from ..signals import membership_changed
from .common import M, account_pk, lock_accounts, lock_directory, require_enterprise_admin

@atomic_service
def enterprise_enable(*, actor, management_account: Account, name: str) -> Enterprise:
    """The management account enables the Enterprise Account Center for its verified company (R-ORG-2)."""
    account = lock_accounts(management_account)[management_account.pk]
    if not account.verified_company_id:
        raise DomainError("Only an account that passed real-name verification as a company can enable the "
                          "Enterprise Account Center (R-ORG-1).")
    if account.enterprise_id is not None:
        raise DomainError(msg.MSG_ALREADY_MEMBER.format(account=account.account_id))
    enterprise = Enterprise.objects.create(name=name.strip()[:120] or account.name,
                                           company_id=account.verified_company_id, eac_enabled=True)
    root = Folder.objects.create(enterprise=enterprise, parent=None, name="Root", depth=0)
    root.path = f"/{root.pk}/"
    root.save(update_fields=["path"])
    account.enterprise = enterprise
    account.folder = root
    account.is_management = True
    account.save(update_fields=["enterprise", "folder", "is_management"])
    audit_event(actor=actor, action="enterprise_enable", obj=enterprise, enterprise=enterprise,
                after={"management_account": account.account_id})
    membership_changed.send(sender=Account, account=account, old_enterprise_id=None, old_folder=None,
                            new_folder=root, at=timezone.now())
    return enterprise


def _clean_folder_name(name) -> str:
    name = (name or "").strip()
    if not (1 <= len(name) <= 24):
        raise DomainError(msg.MSG_FOLDER_NAME, field="name", rule="R-ORG-3")
    return name


@atomic_service
def folder_create(*, actor, parent: Folder, name: str) -> Folder:
    require_enterprise_admin(actor, parent.enterprise_id)
    name = _clean_folder_name(name)
    parent = Folder.objects.select_for_update(no_key=True).get(pk=parent.pk)
    if parent.depth + 1 > Folder.MAX_DEPTH:
        raise DomainError(msg.MSG_FOLDER_DEPTH, field="parent", rule="R-ORG-3")
    if Folder.objects.filter(parent=parent, name=name).exists():
        raise DomainError(msg.MSG_FOLDER_NAME_TAKEN.format(name=name), field="name", rule="R-ORG-3")
    folder = Folder.objects.create(enterprise_id=parent.enterprise_id, parent=parent, name=name,
                                   depth=parent.depth + 1)
    folder.path = f"{parent.path}{folder.pk}/"
    folder.save(update_fields=["path"])
    audit_event(actor=actor, action="folder_create", obj=folder, enterprise=parent.enterprise,
                after={"name": name, "parent": parent.name})
    return folder


@atomic_service
def folder_rename(*, actor, folder: Folder, name: str) -> Folder:
    folder = Folder.objects.select_for_update(no_key=True).get(pk=folder.pk)
    require_enterprise_admin(actor, folder.enterprise_id)
    if folder.parent_id is None:
        raise DomainError(msg.MSG_FOLDER_ROOT)
    name = _clean_folder_name(name)
    if Folder.objects.filter(parent_id=folder.parent_id, name=name).exclude(pk=folder.pk).exists():
        raise DomainError(msg.MSG_FOLDER_NAME_TAKEN.format(name=name), field="name", rule="R-ORG-3")
    old = folder.name
    folder.name = name
    folder.save(update_fields=["name"])
    audit_event(actor=actor, action="folder_rename", obj=folder, enterprise=folder.enterprise,
                before={"name": old}, after={"name": name})
    return folder


@atomic_service
def folder_delete(*, actor, folder: Folder) -> None:
    folder = Folder.objects.select_for_update().get(pk=folder.pk)
    require_enterprise_admin(actor, folder.enterprise_id)
    if folder.parent_id is None:
        raise DomainError(msg.MSG_FOLDER_ROOT)
    children = Folder.objects.filter(parent=folder).count()
    accounts = Account.objects.filter(folder=folder).count()
    open_invitations = Invitation.objects.filter(folder=folder, status=Invitation.Status.INVITED).count()
    if children or accounts or open_invitations:
        raise DomainError(msg.MSG_FOLDER_NOT_EMPTY.format(name=folder.name, folders=children,
                                                      accounts=accounts + open_invitations), rule="R-ORG-4")
    audit_event(actor=actor, action="folder_delete", obj=folder, enterprise=folder.enterprise,
                before={"name": folder.name})
    folder.delete()


@atomic_service
def accounts_move(*, actor, accounts, folder: Folder) -> list[Account]:
    """Move one or many accounts into ``folder``; folder-scoped shares follow at once (R-ORG-4, R-SH-2)."""
    require_enterprise_admin(actor, folder.enterprise_id)
    pks = [account_pk(a) for a in accounts]
    if not pks:
        raise DomainError(msg.MSG_NO_ACCOUNTS, field="accounts")
    lock_directory(folder.enterprise_id)
    locked = lock_accounts(*pks)
    at = timezone.now()
    for account in locked.values():
        if account.enterprise_id != folder.enterprise_id:
            raise DomainError(msg.MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), field="accounts")
    moved = []
    for account in locked.values():
        if account.folder_id == folder.pk:
            continue
        old_folder = account.folder
        account.folder = folder
        account.save(update_fields=["folder"])
        audit_event(actor=actor, action="account_move", obj=account, enterprise=folder.enterprise,
                    before={"folder": old_folder.name if old_folder else None}, after={"folder": folder.name}, at=at)
        membership_changed.send(sender=Account, account=account, old_enterprise_id=account.enterprise_id,
                                old_folder=old_folder, new_folder=folder, at=at)
        moved.append(account)
    return moved


def _expire_invitations(*, now) -> int:
    return Invitation.objects.filter(status=Invitation.Status.INVITED, expires_at__lte=now).update(
        status=Invitation.Status.EXPIRED, responded_at=now)


@atomic_service
def expire_invitations(*, now=None) -> int:
    """Mark the open invitations older than 14 days expired (R-ORG-4); returns how many."""
    return _expire_invitations(now=now or timezone.now())


@atomic_service
def invitation_create(*, actor, enterprise: Enterprise, account_id: str, folder: Folder | None = None) -> Invitation:
    """The management account invites an account by its ID; the invitation expires after 14 days (R-ORG-4)."""
    require_enterprise_admin(actor, enterprise.pk)
    now = timezone.now()
    _expire_invitations(now=now)
    account_id = (account_id or "").strip()
    account = Account.objects.filter(account_id=account_id).first()
    if account is None:
        raise DomainError(msg.MSG_UNKNOWN_ACCOUNT.format(account_id=account_id[:32]), field="account_id")
    account = lock_accounts(account)[account.pk]
    if account.enterprise_id is not None:
        raise DomainError(msg.MSG_ALREADY_MEMBER.format(account=account.account_id), field="account_id")
    if Invitation.objects.filter(enterprise=enterprise, account=account, status=Invitation.Status.INVITED).exists():
        raise DomainError(msg.MSG_ALREADY_INVITED.format(account=account.account_id), field="account_id")
    folder = folder or selectors.root_folder(enterprise)
    if folder.enterprise_id != enterprise.pk:
        raise DomainError("Choose a folder of this enterprise.", field="folder")
    invitation = Invitation.objects.create(
        enterprise=enterprise, account=account, folder=folder, invited_by=actor, created_at=now,
        expires_at=now + timedelta(days=settings.EAC_INVITATION_DAYS))
    audit_event(actor=actor, action="invitation_create", obj=invitation, enterprise=enterprise,
                after={"account": account.account_id, "folder": folder.name}, at=now)
    notify_account(account, kind="invitation", console=True, at=now, subject=f"Invitation from {enterprise.name}",
                   body=f"{enterprise.name} invites your account to join its resource directory.")
    return invitation


def invitation_respond(*, actor, invitation: Invitation, accept: bool) -> Invitation:
    """A user of the invited account accepts or declines (R-ORG-4).

    An invitation past its 14 days is marked expired first, in its own transaction, so that the
    refusal that follows does not roll the expiry back.
    """
    expire_invitations()
    return _invitation_respond(actor=actor, invitation=invitation, accept=accept)


@atomic_service
def _invitation_respond(*, actor, invitation: Invitation, accept: bool) -> Invitation:
    now = timezone.now()
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if actor is None or getattr(actor, "account_id", None) != invitation.account_id:
        raise PermissionDenied("Only a user of the invited account can answer this invitation.")
    if invitation.status == Invitation.Status.INVITED and invitation.expires_at <= now:
        raise DomainError(msg.MSG_INVITATION_CLOSED.format(status="expired"))  # expired a moment ago
    if invitation.status != Invitation.Status.INVITED:
        raise DomainError(msg.MSG_INVITATION_CLOSED.format(status=invitation.get_status_display().lower()))
    if accept:
        lock_directory(invitation.enterprise_id)
    account = lock_accounts(invitation.account_id)[invitation.account_id]
    if accept:
        if account.enterprise_id is not None:
            raise DomainError(msg.MSG_ALREADY_MEMBER.format(account=account.account_id))
        account.enterprise_id = invitation.enterprise_id
        account.folder_id = invitation.folder_id
        account.save(update_fields=["enterprise", "folder"])
        invitation.status = Invitation.Status.ACCEPTED
        membership_changed.send(sender=Account, account=account, old_enterprise_id=None, old_folder=None,
                                new_folder=invitation.folder, at=now)
    else:
        invitation.status = Invitation.Status.DECLINED
    invitation.responded_at = now
    invitation.save(update_fields=["status", "responded_at"])
    audit_event(actor=actor, action="invitation_accept" if accept else "invitation_decline", obj=invitation,
                enterprise=invitation.enterprise, after={"status": invitation.status}, at=now)
    return invitation


@atomic_service
def account_remove(*, actor, account: Account) -> Account:
    """Remove an account from the directory; it loses folder-scoped shares at once (R-ORG-4, R-SH-2).

    Refused while the account has a credit limit (allocated from the enterprise's credit) or a transfer book
    balance: money transferred to it could no longer be withdrawn by its source once it left (R-TR-1, R-TR-4).
    """
    enterprise_id = require_enterprise_admin(actor)
    lock_directory(enterprise_id)
    account = lock_accounts(account)[account.pk]
    if account.enterprise_id != enterprise_id:  # another enterprise's, or in no directory at all
        raise PermissionDenied(msg.MSG_NOT_ADMIN)
    if account.is_management:
        raise DomainError(msg.MSG_REMOVE_MANAGEMENT)
    if account.credit_limit > 0:
        raise DomainError(msg.MSG_REMOVE_CREDIT.format(account=account.account_id, limit=M(account.credit_limit)))
    if account.transfer_book_balance > 0:
        raise DomainError(msg.MSG_REMOVE_TRANSFER_BOOK.format(account=account.account_id,
                                                          amount=M(account.transfer_book_balance)))
    now = timezone.now()
    old_folder, old_enterprise = account.folder, account.enterprise
    account.enterprise = None
    account.folder = None
    account.alert_enabled = False
    account.save(update_fields=["enterprise", "folder", "alert_enabled"])
    audit_event(actor=actor, action="account_remove", obj=account, enterprise=old_enterprise,
                before={"folder": old_folder.name if old_folder else None}, after={"folder": None}, at=now)
    membership_changed.send(sender=Account, account=account, old_enterprise_id=old_enterprise.pk,
                            old_folder=old_folder, new_folder=None, at=now)
    return account
