"""The resource directory screen (R-ORG-3, R-ORG-4): folder tree, accounts per folder, move, invite, remove.

The folder and membership services live in ``accounts.services``; this screen calls them. Each change of
membership updates folder-scoped shares at once (the sharing receiver, R-SH-2). Every POST answers HTMX with
the directory panel re-rendered, and a plain form post with a redirect back (PRG).
"""

from django.contrib import messages
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from accounts import services as account_services
from accounts.models import Account, Folder, Invitation
from core.errors import DomainError

from .views import _ids, admin_required

ACCOUNTS_SHOWN = 200


def _folder(request, pk) -> Folder:
    return get_object_or_404(Folder, pk=pk, enterprise_id=request.user.account.enterprise_id)


def _context(request, selected: Folder | None = None, *, q: str = "") -> dict:
    enterprise = request.user.account.enterprise
    folders = list(Folder.objects.filter(enterprise=enterprise).annotate(n=Count("accounts")).order_by("path"))
    root = next(f for f in folders if f.parent_id is None)
    selected = next((f for f in folders if selected is not None and f.pk == selected.pk), root)
    accounts = Account.objects.filter(enterprise=enterprise, folder=selected).order_by("name")
    if q:
        accounts = Account.objects.filter(enterprise=enterprise).filter(
            Q(name__icontains=q) | Q(account_id__icontains=q)).select_related("folder").order_by("name")
    now = timezone.now()
    invitations = list(Invitation.objects.filter(enterprise=enterprise).select_related("account", "folder")[:50])
    for invitation in invitations:  # an invitation past 14 days shows as expired even before the sweep
        invitation.shown_status = ("Expired" if invitation.status == Invitation.Status.INVITED
                                   and invitation.expires_at <= now else invitation.get_status_display())
    children = {}
    for folder in folders:
        children.setdefault(folder.parent_id, []).append(folder)
    return {
        "folders": folders, "root": root, "selected": selected, "q": q,
        "accounts": list(accounts[:ACCOUNTS_SHOWN]), "accounts_more": max(0, accounts.count() - ACCOUNTS_SHOWN),
        "invitations": invitations, "can_add_child": selected.depth < Folder.MAX_DEPTH,
        "is_empty": not any(f.parent_id == selected.pk for f in folders) and selected.n == 0,
    }


def _render(request, selected=None, *, status=200, q=""):
    template = "sharing/directory.html#directory" if request.htmx else "sharing/directory.html"
    return render(request, template, _context(request, selected, q=q), status=status)


def _after(request, folder: Folder | None, message: str | None = None, error: DomainError | None = None):
    if message:
        messages.success(request, message)
    if error is not None:
        messages.error(request, error.message)
    if request.htmx:
        return _render(request, folder)
    url = reverse("sharing:directory")
    return redirect(f"{url}?folder={folder.pk}" if folder is not None else url)


@admin_required
@require_safe
def directory(request):
    selected = None
    folder_id = request.GET.get("folder")
    if folder_id:
        ids = _ids([folder_id])
        selected = _folder(request, ids[0]) if ids else None
    return _render(request, selected, q=request.GET.get("q", "").strip()[:64])


@admin_required
@require_POST
def folder_create(request):
    parent = _folder(request, (_ids([request.POST.get("parent")]) or [0])[0])
    try:
        folder = account_services.folder_create(actor=request.user, parent=parent, name=request.POST.get("name", ""))
    except DomainError as exc:
        return _after(request, parent, error=exc)
    return _after(request, folder, f"Folder {folder.name} created in {parent.name}.")


@admin_required
@require_POST
def folder_rename(request, pk):
    folder = _folder(request, pk)
    try:
        folder = account_services.folder_rename(actor=request.user, folder=folder, name=request.POST.get("name", ""))
    except DomainError as exc:
        return _after(request, folder, error=exc)
    return _after(request, folder, f"Folder renamed to {folder.name}.")


@admin_required
@require_POST
def folder_delete(request, pk):
    folder = _folder(request, pk)
    parent = folder.parent
    try:
        account_services.folder_delete(actor=request.user, folder=folder)
    except DomainError as exc:
        return _after(request, folder, error=exc)
    return _after(request, parent, f"Folder {folder.name} deleted.")


@admin_required
@require_POST
def accounts_move(request):
    target = _folder(request, (_ids([request.POST.get("folder")]) or [0])[0])
    back = None
    if request.POST.get("from"):
        ids = _ids([request.POST.get("from")])
        back = _folder(request, ids[0]) if ids else None
    accounts = list(Account.objects.filter(enterprise_id=request.user.account.enterprise_id,
                                           pk__in=_ids(request.POST.getlist("accounts"))))
    try:
        moved = account_services.accounts_move(actor=request.user, accounts=accounts, folder=target)
    except DomainError as exc:
        return _after(request, back, error=exc)
    return _after(request, back or target, f"Moved {len(moved)} account(s) to {target.name}; "
                                           "folder-scoped shares followed at once.")


@admin_required
@require_POST
def invite(request):
    enterprise = request.user.account.enterprise
    folder_ids = _ids([request.POST.get("folder")])
    folder = _folder(request, folder_ids[0]) if folder_ids else None
    try:
        invitation = account_services.invitation_create(actor=request.user, enterprise=enterprise,
                                                        account_id=request.POST.get("account_id", ""), folder=folder)
    except DomainError as exc:
        return _after(request, folder, error=exc)
    return _after(request, folder, f"Invitation sent to account {invitation.account.account_id}; "
                                   "it expires in 14 days.")


@admin_required
@require_POST
def account_remove(request, pk):
    account = get_object_or_404(Account, pk=pk, enterprise_id=request.user.account.enterprise_id)
    folder = account.folder
    try:
        account_services.account_remove(actor=request.user, account=account)
    except DomainError as exc:
        return _after(request, folder, error=exc)
    return _after(request, folder, f"Account {account.account_id} removed from the directory; "
                                   "its shared assets ended now.")

