"""Equity asset sharing screens: one tab per asset type, the Share drawer, share history, automatic sharing
rules, and usage import (R-SH-1 to R-SH-8, R-US-1).

Views parse input, call one service, and render. The enterprise administrator acts; a member user sees only
its own account's owned and received assets (actions absent, 403 when called directly); another
enterprise's administrator gets 404 for an asset that is not its enterprise's.
"""

import functools
import json
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.models import Account, Folder
from core.errors import DomainError

from . import selectors, services
from .models import AssetType, ScopeType, UsageImport, UsageRecord
from .usage_import import COLUMNS, MAX_FILE_BYTES, MSG_FILE_TOO_BIG, UsageImportError, import_and_rate

TYPE_SLUGS = {t.value: t.label for t in AssetType}
STATUS_FILTERS = [("", "Any status"), ("valid", "Valid"), ("upcoming", "Not yet valid"), ("expired", "Expired"),
                  ("cancelled", "Cancelled")]
SHARED_FILTERS = [("", "Shared or not"), ("yes", "Shared"), ("no", "Not shared")]
PAGE_SIZE = 50


def admin_required(view):
    """Signed in, and the enterprise administrator (R-ORG-6); a member user gets 403."""

    @functools.wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_enterprise_admin:
            raise HttpForbidden("Only the enterprise administrator can do this.")
        return view(request, *args, **kwargs)

    return wrapper


def _enterprise(request):
    return request.user.account.enterprise


def _admin_asset(request, pk):
    """An asset of the administrator's enterprise, else 404 (never another enterprise's)."""
    return get_object_or_404(selectors.enterprise_assets(request.user.account.enterprise_id)
                             .select_related("owner__enterprise"), pk=pk)


def _done(request, message: str, *, redirect_to: str):
    """After a successful POST: HTMX gets an empty drawer (it closes), the message swapped in out of band, and
    ``assetsChanged`` to refresh the list (the console's drawer contract); otherwise redirect (PRG).

    The event is raised on the requesting element, which must still be in the page: a ``closeDrawer`` event
    raised first would detach it and ``assetsChanged`` would never reach the list.
    """
    if request.htmx:
        response = render(request, "console/drawers/_done.html", {"flash": message})
        response["HX-Trigger"] = "assetsChanged"
        return response
    messages.success(request, message)
    return redirect(redirect_to)


# ---------------------------------------------------------------------------------------------
# Asset list: one tab per type
# ---------------------------------------------------------------------------------------------

@login_required
@require_safe
def asset_list(request, asset_type: str = AssetType.SAVINGS_PLAN):
    if asset_type not in TYPE_SLUGS:
        raise Http404("No such asset type")
    now = timezone.now()
    q = request.GET.get("q", "").strip()[:64]
    status = request.GET.get("status", "")
    shared = request.GET.get("shared", "")
    qs = selectors.asset_list(selectors.visible_assets(request.user), asset_type=asset_type, q=q, status=status,
                              shared=shared, at=now)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    for asset in page.object_list:
        asset.shown_status = asset.status_at(now)
    context = {
        "asset_type": asset_type, "type_label": TYPE_SLUGS[asset_type], "types": TYPE_SLUGS.items(),
        "page": page, "q": q, "status": status, "shared": shared, "status_filters": STATUS_FILTERS,
        "shared_filters": SHARED_FILTERS, "is_admin": request.user.is_enterprise_admin,
        "share_limit": selectors.SHARE_LIMIT,
    }
    template = "sharing/assets.html#table" if request.htmx and not request.htmx.boosted else "sharing/assets.html"
    return render(request, template, context)


# ---------------------------------------------------------------------------------------------
# Share drawer (R-SH-2 to R-SH-5, R-SH-8)
# ---------------------------------------------------------------------------------------------

_PK = re.compile(r"^[1-9][0-9]{0,17}$", re.ASCII)  # a primary key the database can hold (below 2**63)


def _ids(values) -> list[int]:
    """The plain positive numbers among ``values``; anything else (junk, huge, negative) names nothing."""
    return [int(value.strip()) for value in values if isinstance(value, str) and _PK.match(value.strip())]


@admin_required
@require_http_methods(["GET", "POST"])
def share_drawer(request, pk):
    asset = _admin_asset(request, pk)
    enterprise = asset.owner.enterprise
    data = request.POST if request.method == "POST" else request.GET
    current = selectors.scope_members(asset)
    if "scope_type" in data:
        scope_type = data.get("scope_type")
        account_ids = _ids(data.getlist("accounts"))
        folder_ids = _ids(data.getlist("folders"))
    else:
        scope_type = asset.scope_type if asset.scope_type != ScopeType.NONE else ScopeType.ACCOUNTS
        account_ids = [a.pk for a in current["accounts"]]
        folder_ids = [f.pk for f in current["folders"]]
    chosen_accounts = list(Account.objects.filter(enterprise=enterprise, pk__in=account_ids).order_by("name"))
    folders = list(selectors.enterprise_folders(enterprise.pk))
    chosen_folders = [f for f in folders if f.pk in folder_ids]
    error = None
    if request.method == "POST" and data.get("action") == "share":
        try:
            counts = services.share_asset(actor=request.user, asset=asset, scope_type=scope_type,
                                          accounts=chosen_accounts, folders=chosen_folders)
        except DomainError as exc:
            error = exc
        else:
            return _done(request, f"Asset {asset.asset_id} is shared: {counts['added']} accounts added, "
                                  f"{counts['ended']} removed, {counts['kept']} unchanged.",
                         redirect_to=reverse("sharing:assets", args=[asset.asset_type]))
    q = data.get("q", "").strip()[:64]
    chosen_ids = {a.pk for a in chosen_accounts}
    picker = [a for a in selectors.candidate_accounts(enterprise.pk, q=q) if a.pk not in chosen_ids]
    resolution = selectors.resolve_scope(enterprise=enterprise, owner=asset.owner, scope_type=scope_type,
                                         accounts=chosen_accounts, folders=chosen_folders)
    context = {
        "asset": asset, "scope_type": scope_type, "chosen_accounts": chosen_accounts, "picker": picker, "q": q,
        "folders": folders, "folder_ids": set(folder_ids), "resolution": resolution, "error": error,
        "share_limit": selectors.SHARE_LIMIT, "scope_types": [ScopeType.ACCOUNTS, ScopeType.FOLDERS],
        "uncovered": list(selectors.uncovered_accounts(asset)),
    }
    if request.htmx:
        return render(request, "sharing/share_drawer.html#drawer", context)
    return render(request, "sharing/share_drawer.html", context)


@admin_required
@require_POST
def unshare(request, pk):
    asset = _admin_asset(request, pk)
    try:
        counts = services.unshare_asset(actor=request.user, asset=asset)
    except DomainError as exc:
        messages.error(request, exc.message)
        if request.htmx:
            response = HttpResponse(status=204)
            response["HX-Trigger"] = json.dumps({"assetsChanged": True})
            return response
        return redirect("sharing:assets", asset.asset_type)
    return _done(request, f"Asset {asset.asset_id} is no longer shared; {counts['ended']} grants ended now.",
                 redirect_to=reverse("sharing:assets", args=[asset.asset_type]))


@admin_required
@require_safe
def history_drawer(request, pk):
    asset = _admin_asset(request, pk)
    context = {"asset": asset, "grants": list(selectors.share_history(asset)),
               "uncovered": list(selectors.uncovered_accounts(asset)), "scope": selectors.scope_members(asset)}
    if request.htmx:
        return render(request, "sharing/history_drawer.html#drawer", context)
    return render(request, "sharing/history_drawer.html", context)


# ---------------------------------------------------------------------------------------------
# Automatic sharing rules (R-SH-3)
# ---------------------------------------------------------------------------------------------

@admin_required
@require_http_methods(["GET", "POST"])
def rules(request):
    enterprise = _enterprise(request)
    errors = {}
    if request.method == "POST":
        asset_type = request.POST.get("asset_type", "")
        scope_type = request.POST.get("scope_type", "")
        account_ids = [x for x in request.POST.get("account_ids", "").replace(",", " ").split() if x]
        accounts = list(Account.objects.filter(enterprise=enterprise, account_id__in=account_ids))
        unknown = sorted(set(account_ids) - {a.account_id for a in accounts})
        folders = list(Folder.objects.filter(enterprise=enterprise, pk__in=_ids(request.POST.getlist("folders"))))
        try:
            if unknown:
                raise DomainError(f"No account of your enterprise has the ID {', '.join(unknown[:5])}.",
                                  field="accounts")
            services.auto_rule_set(actor=request.user, enterprise=enterprise, asset_type=asset_type,
                                   scope_type=scope_type, accounts=accounts, folders=folders,
                                   enabled=request.POST.get("enabled") == "on")
        except DomainError as exc:
            if asset_type in TYPE_SLUGS:
                errors[asset_type] = exc  # shown on that type's rule
            else:  # no such type: no rule to show it on, so above the rules
                messages.error(request, exc.message)
        else:
            messages.success(request, f"The automatic sharing rule for {TYPE_SLUGS.get(asset_type)} is saved; "
                                      "it applies to assets provisioned from now on.")
            if not request.htmx:
                return redirect("sharing:rules")
    existing = selectors.auto_rules(enterprise.pk)
    rows = []
    for value, label in TYPE_SLUGS.items():
        rule = existing.get(value)
        rows.append({"type": value, "label": label, "rule": rule, "error": errors.get(value),
                     "account_ids": ", ".join(a.account_id for a in rule.accounts.all()) if rule else "",
                     "folder_ids": {f.pk for f in rule.folders.all()} if rule else set()})
    context = {"rows": rows, "folders": list(selectors.enterprise_folders(enterprise.pk)),
               "scope_types": [ScopeType.ACCOUNTS, ScopeType.FOLDERS]}
    if request.htmx:
        return render(request, "sharing/rules.html#rules", context)
    return render(request, "sharing/rules.html", context)


# ---------------------------------------------------------------------------------------------
# Usage import (R-US-1)
# ---------------------------------------------------------------------------------------------

@admin_required
@require_http_methods(["GET", "POST"])
def usage_import_page(request):
    enterprise = _enterprise(request)
    error, row_errors, result = None, [], None
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise DomainError("Choose a .csv or .xlsx file.", field="file")
            if upload.size > MAX_FILE_BYTES:  # refused before it is read into memory
                raise DomainError(MSG_FILE_TOO_BIG, field="file")
            batch, rated = import_and_rate(actor=request.user, enterprise=enterprise, file_name=upload.name,
                                           content=upload.read())
        except UsageImportError as exc:
            error, row_errors = exc, exc.errors
        except DomainError as exc:
            error = exc
        else:
            result = (batch, rated)
            messages.success(request, f"Imported {batch.new_records} new usage records of {batch.rows} rows from "
                                      f"{batch.file_name}; rated {rated}.")
            if not request.htmx:
                return redirect("sharing:usage_import")
    imports = UsageImport.objects.filter(enterprise=enterprise).select_related("actor")[:10]
    recent = (UsageRecord.objects.filter(account__enterprise=enterprise).select_related("account")
              .prefetch_related("deductions__asset").order_by("-id")[:20])
    context = {"error": error, "row_errors": row_errors[:50], "more_errors": max(0, len(row_errors) - 50),
               "result": result, "imports": imports, "recent": recent, "columns": COLUMNS}
    if request.htmx:
        return render(request, "sharing/usage_import.html#panel", context)
    return render(request, "sharing/usage_import.html", context)
