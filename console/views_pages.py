"""Pages: transfer records, credit control, contracts, messages, audit log (issue 3, part B).

Every page is for a signed-in user and shows only what its role may see (R-ORG-6): the enterprise
administrator sees its enterprise, a member user its own account; nobody sees another enterprise.
"""

import re
from decimal import Decimal

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts import selectors, services
from accounts.models import CreditChangeRecord, CreditContract, TransferRecord
from core import errors, notifications
from core.models import AuditEvent
from core.money import format_money

from .forms import (
    AuditFilterForm,
    CreditRecordFilterForm,
    DateRangeForm,
    EnterpriseTransferFilterForm,
    TransferFilterForm,
)
from .views_drawers import admin_required

PER_PAGE = 25
_DEFAULT_REPR = re.compile(r"^\w+ object \(\d+\)$")  # Django's str() of a model without __str__


def _see_other(url: str) -> HttpResponseRedirect:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


_PK = re.compile(r"^[1-9][0-9]{0,17}$", re.ASCII)


def _posted_pk(request, name: str) -> int:
    """The primary key posted in ``name``; anything but a plain positive number names no object (404)."""
    value = request.POST.get(name, "").strip()
    if not _PK.match(value):
        raise Http404("No such object.")
    return int(value)


def _page(request, queryset, per_page: int = PER_PAGE):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def _account_filter(request, form):
    """Apply the account filter of ``form`` (already validated): returns (account or None, search text).

    The account must be one the user may see: another enterprise's account filters nothing and shows nothing.
    """
    visible = selectors.visible_accounts(request.user)
    count = visible.count()
    form.set_account_choices(
        [(a.pk, f"{a.name} ({a.account_id})") for a in visible.order_by("name", "account_id")]
        if count <= form.SELECT_LIMIT else None)
    data = form.cleaned_data if form.is_valid() else {}
    account = None
    if data.get("account"):
        account = get_object_or_404(visible, pk=data["account"])
    return account, (data.get("q") or "").strip(), data


def _account_search(q: str, *prefixes: str) -> Q:
    """Rows whose account (through each of ``prefixes``) has this ID (prefix) or name (part)."""
    condition = Q()
    for prefix in prefixes:
        condition |= Q(**{f"{prefix}__account_id__startswith": q}) | Q(**{f"{prefix}__name__icontains": q})
    return condition


# --- Transfer records of the enterprise or of the own account (R-TR-6) --------------------------

@login_required
@require_http_methods(["GET"])
def transfer_records(request):
    user = request.user
    own = user.account
    if user.is_enterprise_admin:
        form = EnterpriseTransferFilterForm(request.GET or None)
        account, q, data = _account_filter(request, form)
        kwargs = {"kind": data.get("kind") or None, "date_from": data.get("date_from"),
                  "date_to": data.get("date_to")}
        if account is not None:
            records = selectors.transfer_records(account, **kwargs)
        else:
            records = selectors.enterprise_transfer_records(own.enterprise, **kwargs)
        if q:
            records = records.filter(_account_search(q, "payer", "payee"))
        if not form.is_bound:
            form = EnterpriseTransferFilterForm()
            _account_filter(request, form)
    else:
        form = TransferFilterForm(request.GET or None)
        data = form.cleaned_data if form.is_valid() else {}
        if own is None:
            records = TransferRecord.objects.none()
        else:
            records = selectors.transfer_records(own, kind=data.get("kind") or None, date_from=data.get("date_from"),
                                                 date_to=data.get("date_to"))
        account = own
    return render(request, "console/pages/transfer_records.html", {
        "form": form, "page": _page(request, records), "is_admin": user.is_enterprise_admin, "account": account,
    })


# --- Credit control management (R-CR-7) -------------------------------------------------------

@login_required
@require_http_methods(["GET"])
def credit_control(request):
    user = request.user
    own = user.account
    enterprise = own.enterprise if own is not None and own.enterprise_id else None
    context = {"is_admin": user.is_enterprise_admin, "enterprise": enterprise}
    if user.is_enterprise_admin:
        form = CreditRecordFilterForm(request.GET or None)
        account, q, data = _account_filter(request, form)
        records = selectors.credit_change_records(enterprise, account=account, date_from=data.get("date_from"),
                                                  date_to=data.get("date_to"))
        if q:
            records = records.filter(_account_search(q, "account"))
        if not form.is_bound:
            form = CreditRecordFilterForm()
            _account_filter(request, form)
        context.update(summary=selectors.credit_summary(enterprise), contract=selectors.credit_contract(enterprise))
    else:
        # A member user sees its own account's limit and change records only (R-ORG-6).
        form = DateRangeForm(request.GET or None)
        data = form.cleaned_data if form.is_valid() else {}
        if enterprise is None:
            records = CreditChangeRecord.objects.none()
        else:
            records = selectors.credit_change_records(enterprise, account=own, date_from=data.get("date_from"),
                                                      date_to=data.get("date_to"))
    page = _page(request, records)
    rows = [{"record": r, "change": r.new_value - r.old_value} for r in page]
    context.update(form=form, page=page, rows=rows, own=own)
    return render(request, "console/pages/credit_control.html", context)


# --- Contracts (R-CR-1) -------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def contracts(request):
    """The enterprise's credit control contract; the management account's administrator confirms a pending one."""
    user = request.user
    own = user.account
    enterprise_id = own.enterprise_id if own is not None else None
    if request.method == "POST":
        admin_required(request)
        contract = get_object_or_404(CreditContract, pk=_posted_pk(request, "contract"), enterprise_id=enterprise_id)
        try:
            services.credit_contract_confirm(actor=user, contract=contract)
        except errors.PermissionDenied as exc:
            raise PermissionDenied(exc.message)
        except errors.DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, (f"Credit control contract {contract.contract_number} is confirmed and "
                                       f"effective now; you can allocate credit limits to your accounts."))
        return _see_other(reverse("console:contracts"))
    rows = list(CreditContract.objects.filter(enterprise_id=enterprise_id)
                .select_related("created_by", "confirmed_by").order_by("-created_at"))
    confirming = None
    if user.is_enterprise_admin and request.GET.get("confirm"):
        # The no-JavaScript confirmation step: the same form as the dialog, as a page section.
        confirming = next((c for c in rows if str(c.pk) == request.GET["confirm"]
                           and c.status == CreditContract.Status.PENDING), None)
    return render(request, "console/pages/contracts.html", {
        "contracts": rows, "can_confirm": user.is_enterprise_admin, "confirming": confirming,
    })


# --- Messages ---------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def messages_list(request):
    """The signed-in account's in-console messages, newest first (R-AL-3, R-NT-1)."""
    account_id = request.user.account_id
    inbox = notifications.inbox(account_id)
    if request.method == "POST":
        if request.POST.get("action") == "read_all":
            done = notifications.messages_mark_read(account_id=account_id)
            messages.success(request, f"Marked {done} message{'s' if done != 1 else ''} as read.")
        else:
            message = get_object_or_404(inbox, pk=_posted_pk(request, "message"))
            notifications.messages_mark_read(account_id=account_id, message_id=message.pk)
        query = QueryDict(request.POST.get("return_query", "")).urlencode()
        return _see_other(reverse("console:messages") + (f"?{query}" if query else ""))
    only_unread = request.GET.get("unread") == "1"
    shown = inbox.filter(read_at__isnull=True) if only_unread else inbox
    return render(request, "console/pages/messages.html", {
        "page": _page(request, shown.order_by("-created_at", "-id")), "only_unread": only_unread,
        "unread_count": inbox.filter(read_at__isnull=True).count(),
    })


# --- Audit log (R-AU-1) -------------------------------------------------------------------------

def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value} if prefix else {"value": value}


_MONEY_TEXT = re.compile(r"^-?\d+\.\d{2}$")


def _shown(value):
    """An audit value as people read it: Yes/No, money with separators, the rest as stored."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str) and _MONEY_TEXT.match(value):
        return format_money(Decimal(value))
    return value


def _changes(event: AuditEvent) -> list[dict]:
    """The fields an event changed, as (field, before, after); unchanged fields are left out."""
    before, after = _flatten(event.before or {}), _flatten(event.after or {})
    rows = []
    for key in list(dict.fromkeys([*before, *after])):
        old, new = before.get(key), after.get(key)
        if old != new:
            rows.append({"field": key.replace("_", " "), "before": _shown(old), "after": _shown(new)})
    return rows


def _object_label(event: AuditEvent) -> str:
    """What the event changed, by name: the object's own text, or its kind and id when it has none."""
    if event.object_repr and not _DEFAULT_REPR.match(event.object_repr):
        return event.object_repr
    try:
        kind = apps.get_model(event.object_type)._meta.verbose_name
    except (LookupError, ValueError):
        kind = event.object_type or "object"
    return f"{kind[:1].upper()}{kind[1:]} #{event.object_id}" if event.object_id else kind


@login_required
@require_http_methods(["GET"])
def audit_log(request):
    """Every change made in the enterprise: who, what, before and after, when, from where (R-AU-1)."""
    admin_required(request)
    enterprise_id = request.user.account.enterprise_id
    events = AuditEvent.objects.filter(enterprise_id=enterprise_id)
    actions = list(events.order_by("action").values_list("action", flat=True).distinct())
    form = AuditFilterForm(request.GET or None, actions=actions)
    data = form.cleaned_data if form.is_valid() else {}
    if data.get("action"):
        events = events.filter(action=data["action"])
    if data.get("date_from"):
        events = events.filter(created_at__date__gte=data["date_from"])
    if data.get("date_to"):
        events = events.filter(created_at__date__lte=data["date_to"])
    page = _page(request, events.select_related("actor").order_by("-created_at", "-id"))
    rows = [{"event": e, "object": _object_label(e), "changes": _changes(e)} for e in page]
    return render(request, "console/pages/audit_log.html", {
        "form": form if form.is_bound else AuditFilterForm(actions=actions), "page": page, "rows": rows,
    })
