"""The drawers opened from a row of the account table (issue 3, part B).

Each drawer is one template with a ``drawer`` partial: an HTMX request gets the partial (swapped into
``#drawer``), any other request the full page with the same partial in a ``.page-panel``. A POST
validates, calls ONE service, and answers as the HTMX contract in ``COMMON.md`` says: on success an
empty drawer, the flash message out of band and ``HX-Trigger: accountChanged`` (or a 303 redirect
without HTMX); on a refusal the drawer again, with the reason at the field and nothing changed.
"""

import functools
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from accounts import selectors, services
from core import errors
from core.money import format_money

from .forms import (
    AlertBatchForm,
    AlertForm,
    CreditLimitForm,
    TransferFilterForm,
    TransferForm,
    add_domain_error,
    int_param,
    new_idempotency_key,
)

ACCOUNT_CHANGED = "accountChanged"
RECORDS_PER_DRAWER_PAGE = 10


# --- Shared by the drawers and the pages -------------------------------------------------------

def admin_required(request) -> None:
    """The enterprise administrator's actions are refused (403) for everybody else (R-ORG-6)."""
    if not request.user.is_enterprise_admin:
        raise PermissionDenied("Only the enterprise administrator can do this (R-ORG-6).")


def admin_account(request, pk):
    """Account ``pk`` of the administrator's own enterprise; 404 for any other (never its data)."""
    admin_required(request)
    return get_object_or_404(selectors.visible_accounts(request.user).select_related("enterprise", "folder"), pk=pk)


def next_url(request) -> str:
    """Where a drawer returns to without JavaScript: a safe ``next`` or the account table."""
    url = request.POST.get("next") or request.GET.get("next")
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return reverse("console:accounts")


def render_drawer(request, template: str, context: dict):
    """The drawer partial for HTMX, the full page otherwise (the same markup in both)."""
    context.setdefault("cancel_url", next_url(request))
    context.setdefault("next", request.POST.get("next") or request.GET.get("next") or "")
    return render(request, f"{template}#drawer" if request.htmx else template, context)


def drawer_success(request, message: str):
    """Close the drawer and say what happened; the table and summary refresh on ``accountChanged``."""
    if request.htmx:
        response = render(request, "console/drawers/_done.html", {"flash": message})
        response["HX-Trigger"] = ACCOUNT_CHANGED
        return response
    messages.success(request, message)
    response = HttpResponseRedirect(next_url(request))
    response.status_code = 303
    return response


def call_service(service, form, *, aliases=None, **kwargs):
    """Run one service; a refusal goes to the form (returns ``None``), a permission refusal is a 403."""
    try:
        return service(**kwargs)
    except errors.PermissionDenied as exc:
        raise PermissionDenied(exc.message)
    except errors.DomainError as exc:
        add_domain_error(form, exc, aliases=aliases)
        return None


def label(account) -> str:
    return f"{account.name} ({account.account_id})"


# --- Credit Quota Settings (R-CR-3 to R-CR-6) --------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def credit_drawer(request, pk):
    account = admin_account(request, pk)
    if request.method == "POST":
        form = CreditLimitForm(request.POST)
        if form.is_valid():
            record = call_service(services.credit_limit_set, form, actor=request.user, account=account,
                                  new_limit=form.cleaned_data["new_limit"], reason=form.cleaned_data["reason"],
                                  idempotency_key=form.cleaned_data["idempotency_key"])
            if record is not None:
                return drawer_success(request, (
                    f"Credit limit of {label(account)} changed from {format_money(record.old_value)} "
                    f"to {format_money(record.new_value)}."))
        account.refresh_from_db()
    else:
        form = CreditLimitForm(initial={"idempotency_key": new_idempotency_key()})
    blocker = services.credit_blocker(account)
    return render_drawer(request, "console/drawers/credit.html", {
        "account": account,
        "form": form,
        "figures": selectors.credit_limit_range(account),
        "blocker": blocker,
    })


# --- Transfer and withdraw, with a confirmation step (R-TR-1 to R-TR-5, R-TR-7, R-TR-8) ---------

PREVIEW_ROWS = [
    ("own_cash", "Own cash"),
    ("transfer_book_balance", "Transfer book balance"),
    ("cash_balance", "Cash balance"),
    ("available_credit", "Available credit"),
]


def _preview_side(title: str, side: dict) -> dict:
    rows = []
    for key, name in PREVIEW_ROWS:
        before, after = side["before"][key], side["after"][key]
        rows.append({"label": name, "before": before, "after": after, "change": after - before})
    return {"title": title, "account": side["account"], "rows": rows}


PAYER_CHOICES_LIMIT = 50


def _transfer_choices(account, user, *, payer_query: str = "", selected_payer=None, selected_source=None,
                      only_selected: bool = False):
    """The transfer-out accounts (with their transferable amount) and the withdrawal sources (with theirs).

    An enterprise may have thousands of accounts: the transfer-out list shows at most 50, those with the most own
    cash first, narrowed by a search on name or account ID; the chosen one is always kept in the list.

    ``only_selected``: each list holds only the chosen account, if it is a valid choice, for a confirm, which
    renders no list when it goes through. The same accounts as the full lists (any visible account but this one;
    a past source of the same enterprise), and also a source whose transfers here were all withdrawn: the
    withdrawal that did it, sent again with its key, gets its first result from the service (R-TR-7).
    """
    candidates = selectors.visible_accounts(user).exclude(pk=account.pk).select_related("enterprise")
    sources = selectors.withdrawal_sources(account, including_withdrawn=only_selected).filter(
        enterprise_id=account.enterprise_id).select_related("enterprise")
    selected = int_param(selected_payer)
    if only_selected:
        shown = list(candidates.filter(pk=selected)) if selected is not None else []
        source = int_param(selected_source)
        sources = sources.filter(pk=source) if source is not None else sources.none()
        query, more = "", False
    else:
        query = (payer_query or "").strip()[:100]
        matching = (candidates.filter(Q(name__icontains=query) | Q(account_id__startswith=query)) if query
                    else candidates)
        shown = list(matching.order_by("-own_cash", "name", "pk")[:PAYER_CHOICES_LIMIT + 1])
        more = len(shown) > PAYER_CHOICES_LIMIT
        shown = shown[:PAYER_CHOICES_LIMIT]
        if selected is not None and selected not in {a.pk for a in shown}:
            chosen = candidates.filter(pk=selected).first()
            if chosen is not None:
                shown.insert(0, chosen)
    payers = {a.pk: a for a in shown}
    payer_choices = [(a.pk, f"{label(a)} · transferable {format_money(selectors.transferable_amount(a))}")
                     for a in shown]
    withdrawable = selectors.withdrawable_amounts(sources, account)
    sources = {s.pk: s for s, _ in withdrawable}
    source_choices = [(s.pk, f"{label(s)} · withdrawable {format_money(amount)}") for s, amount in withdrawable]
    return payers, payer_choices, sources, source_choices, {"query": query, "more": more}


@login_required
@require_http_methods(["GET", "POST"])
def transfer_drawer(request, pk):
    """Opened on account X, always the transfer-in side: Transfer moves money from the chosen account into
    X's transfer book balance; Withdraw moves it from X back to one of X's past sources."""
    account = admin_account(request, pk)
    data = request.POST if request.method == "POST" else request.GET
    kind = TransferForm.TYPE_WITHDRAW if data.get("type") == TransferForm.TYPE_WITHDRAW else TransferForm.TYPE_TRANSFER
    step = request.POST.get("step", "edit") if request.method == "POST" else "edit"
    if step not in ("edit", "switch", "review", "confirm"):
        step = "edit"  # only an explicit confirm moves money; anything else shows the form again
    # A confirm that goes through shows no list: it reads only the chosen accounts, not up to 50 transfer-out
    # accounts and every withdrawal source with their figures (most of a confirm's time: bench/RESULTS.md, section
    # 2). When it does not go through, the lists are read below, before the form is shown again.
    confirming = request.method == "POST" and step == "confirm"
    lists = functools.partial(_transfer_choices, account, request.user, payer_query=data.get("payer_q", ""),
                              selected_payer=data.get("payer"), selected_source=data.get("source"))
    payers, payer_choices, sources, source_choices, payer_search = lists(only_selected=confirming)
    choices = {"payer_choices": payer_choices, "source_choices": source_choices}
    preview = None

    if request.method == "GET" or step in ("edit", "switch"):
        # Showing the form (first time, after Back, or after switching the type): no validation yet.
        initial = {"type": kind, "idempotency_key": new_idempotency_key()}
        if request.method == "POST":
            initial.update({k: v for k, v in request.POST.items() if k in ("payer", "source", "amount", "remark",
                                                                              "idempotency_key", "payer_q")})
            initial["type"] = kind
        form = TransferForm(initial=initial, **choices)
        step = "edit"
    else:
        form = TransferForm(request.POST, **choices)
        if not form.is_valid():
            step = "edit"
        elif step == "review":
            preview = _transfer_preview(form, account, payers, sources)
            step = "review" if preview else "edit"
        else:  # confirm: the service checks everything again in its transaction (R-TR-8)
            record = _transfer_confirm(request, form, account, payers, sources)
            if record is not None:
                return drawer_success(request, _transfer_message(record))
            step = "edit"
        if confirming:  # refused or invalid: the form is shown again, with its full lists and its errors
            payers, payer_choices, sources, source_choices, payer_search = lists()
            form.set_choices(payer_choices, source_choices)
    if step == "edit" and form.is_bound and form.errors:
        account.refresh_from_db()
    return render_drawer(request, "console/drawers/transfer.html", {
        "account": account,
        "form": form,
        "kind": kind,
        "step": step,
        "preview": preview,
        "transferable": selectors.transferable_amount(account),
        "has_sources": bool(source_choices),
        "payer_search": payer_search,
        "payer_choices_limit": PAYER_CHOICES_LIMIT,
    })


def _transfer_preview(form, account, payers, sources):
    data = form.cleaned_data
    try:
        if data["type"] == TransferForm.TYPE_TRANSFER:
            figures = selectors.transfer_preview(payers[data["payer"]], account, data["amount"])
            return {"amount": figures["amount"], "limit_label": "Transferable amount", "limit": figures["limit"],
                    "sides": [_preview_side("Transfer-out account", figures["payer"]),
                              _preview_side("Transfer-in account", figures["payee"])]}
        figures = selectors.withdrawal_preview(sources[data["source"]], account, data["amount"])
        return {"amount": figures["amount"], "limit_label": "Withdrawable amount", "limit": figures["limit"],
                "sides": [_preview_side("Withdraw from (transfer-in account)", figures["target"]),
                          _preview_side("Back to (original transfer-out account)", figures["source"])]}
    except errors.DomainError as exc:
        add_domain_error(form, exc, aliases={"payee": None, "target": None})
        return None


def _transfer_confirm(request, form, account, payers, sources):
    data = form.cleaned_data
    common = {"actor": request.user, "amount": data["amount"], "remark": data["remark"],
              "idempotency_key": data["idempotency_key"]}
    if data["type"] == TransferForm.TYPE_TRANSFER:
        return call_service(services.transfer_create, form, aliases={"payee": None},
                            payer=payers[data["payer"]], payee=account, **common)
    return call_service(services.withdrawal_create, form, aliases={"target": None},
                        source=sources[data["source"]], target=account, **common)


def _transfer_message(record) -> str:
    amount = format_money(record.amount)
    if record.kind == record.Kind.TRANSFER:
        return f"Transferred {amount} from {label(record.payer)} to {label(record.payee)}."
    return f"Withdrew {amount} from {label(record.payer)} back to {label(record.payee)}."


# --- Transfer records of one account (R-TR-6) ---------------------------------------------------

@login_required
@require_http_methods(["GET"])
def transfer_records_drawer(request, pk):
    """Every transfer and withdrawal in and out of the account; a member user sees its own account's."""
    account = get_object_or_404(selectors.visible_accounts(request.user), pk=pk)
    form = TransferFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    records = selectors.transfer_records(account, kind=filters.get("kind") or None,
                                         date_from=filters.get("date_from"), date_to=filters.get("date_to"))
    page = Paginator(records, RECORDS_PER_DRAWER_PAGE).get_page(request.GET.get("page"))
    rows = [{"record": r, "outgoing": r.payer_id == account.pk,
             "counterpart": r.payee if r.payer_id == account.pk else r.payer} for r in page]
    return render_drawer(request, "console/drawers/transfer_records.html", {
        "account": account, "form": form if form.is_bound else TransferFilterForm(), "page": page, "rows": rows,
    })


# --- Low balance alert, one account and batch (R-AL-1, R-AL-2) ---------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def alert_drawer(request, pk):
    account = admin_account(request, pk)
    if request.method == "POST":
        form = AlertForm(request.POST)
        if form.is_valid():
            done = call_service(services.alert_set, form, actor=request.user, account=account,
                                enabled=form.cleaned_data["enabled"], threshold=form.cleaned_data["threshold"])
            if done is not None:
                return drawer_success(request, _alert_message([done], form.cleaned_data))
    else:
        form = AlertForm(initial={"enabled": account.alert_enabled, "threshold": account.alert_threshold})
    return render_drawer(request, "console/drawers/alert.html", {"account": account, "form": form})


def _alert_message(accounts, data) -> str:
    who = label(accounts[0]) if len(accounts) == 1 else f"{len(accounts)} accounts"
    if data["enabled"]:
        return f"Low balance alert turned on for {who} at a threshold of {format_money(data['threshold'])}."
    return f"Low balance alert turned off for {who} (threshold {format_money(data['threshold'])})."


_PK = re.compile(r"^[1-9][0-9]{0,17}$", re.ASCII)  # a primary key the database can hold (below 2**63)


def _selected_pks(values) -> list[int]:
    """The accounts selected; a value that is not a plain positive number names no account (404)."""
    pks = []
    for value in values:
        if not isinstance(value, str) or not _PK.match(value.strip()):
            raise Http404("No such account.")
        pks.append(int(value.strip()))
    return list(dict.fromkeys(pks))


@login_required
@require_http_methods(["GET", "POST"])
def alert_batch_drawer(request):
    """One threshold and one switch for the rows selected in the table, all or none (R-AL-2)."""
    admin_required(request)
    data = request.POST if request.method == "POST" else request.GET
    pks = _selected_pks(data.getlist("accounts"))
    accounts = list(selectors.visible_accounts(request.user).filter(pk__in=pks).order_by("name", "account_id"))
    if len(accounts) != len(pks):
        raise Http404("An account selected is not an account of your enterprise.")
    choices = [(a.pk, label(a)) for a in accounts]
    if request.method == "POST":
        form = AlertBatchForm(request.POST, account_choices=choices)
        if form.is_valid():
            done = call_service(services.alert_set_many, form, actor=request.user,
                                accounts=[a for a in accounts if a.pk in set(form.cleaned_data["accounts"])],
                                enabled=form.cleaned_data["enabled"], threshold=form.cleaned_data["threshold"])
            if done is not None:
                return drawer_success(request, _alert_message(done, form.cleaned_data))
    else:
        form = AlertBatchForm(initial={"accounts": pks, "enabled": True}, account_choices=choices)
    return render_drawer(request, "console/drawers/alert_batch.html", {"accounts": accounts, "form": form})
