"""The unified account management table, its export, and the account details page (issue 3, part A).

One view, two renderings: a normal request gets the whole page; an HTMX request aimed at ``#account-table``
or ``#account-summary`` (the ``HX-Target`` header) gets only that fragment of the same template. All the
table's state lives in the query string, so every view of it can be bookmarked (R-UAM-2).
"""

import re
import tempfile
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe
from django_htmx.http import push_url

from accounts import selectors, services
from accounts.models import Account, AlertEvent, Bill, Charge, Folder, TopUp
from sharing import selectors as sharing_selectors

from . import summary
from .forms import int_param
from .resources import export_filename, write_xlsx

PAGE_SIZES = (20, 50, 100, 500)
DEFAULT_PAGE_SIZE = 50
DEFAULT_SORT = "name"
ALERT_CHOICES = (("", "All alert states"), ("on", "Alert on"), ("off", "Alert off"), ("below", "Below threshold"))
# The sortable columns after name and id, in table order: (sort key, header label).
MONEY_COLUMNS = (
    ("available_credit", "Available credit"),
    ("cash_balance", "Cash balance"),
    ("transfer_book_balance", "Transfer book balance"),
    ("credit_limit", "Credit limit"),
    ("outstanding", "Outstanding"),
    ("overdue", "Overdue"),
)
# The sort choices of the toolbar (phones have no column headers to click): (value, label).
SORT_OPTIONS = [
    {"value": "name", "label": "Name A–Z"}, {"value": "-name", "label": "Name Z–A"},
    {"value": "account_id", "label": "Account ID ascending"}, {"value": "-account_id", "label": "Account ID descending"},
    {"value": "folder", "label": "Folder A–Z"}, {"value": "-folder", "label": "Folder Z–A"},
] + [option for key, label in MONEY_COLUMNS + (("coupons", "Coupons"), ("alert_threshold", "Alert threshold"))
     for option in ({"value": f"-{key}", "label": f"{label}: highest first"},
                    {"value": key, "label": f"{label}: lowest first"})]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RECENT = 20


# --- Who is looking --------------------------------------------------------------------------------

@dataclass
class Viewer:
    """The signed-in console user, the account it acts for, and whether it administers the enterprise."""

    user: object
    account: Account
    enterprise: object
    is_admin: bool


def get_viewer(request, *, with_contract: bool = False) -> Viewer:
    """The account the user acts for, loaded with its enterprise in one query (R-ORG-6); with
    ``with_contract``, the enterprise's credit control contract comes in the same query (for a read-only page).

    A user acting for no account (an account manager) has no console table: 403, the back office is theirs.
    """
    user = request.user
    if user.account_id is None:
        raise PermissionDenied("This user acts for no account; account managers use the back office.")
    related = "enterprise__credit_contract" if with_contract else "enterprise"
    account = Account.objects.select_related(related).get(pk=user.account_id)
    user.account = account  # the frame and the role check reuse it instead of querying again
    return Viewer(user=user, account=account, enterprise=account.enterprise, is_admin=user.is_enterprise_admin)


def _fragment(request) -> str | None:
    """The id of the fragment an HTMX request asks for, or None for the whole page."""
    htmx = getattr(request, "htmx", None)
    if not htmx or htmx.history_restore_request or htmx.boosted:
        return None
    return htmx.target


# --- Table state in the URL ------------------------------------------------------------------------

@dataclass(frozen=True)
class TableState:
    """Search, filters, sort and page of the table, read from and written to the query string."""

    q: str = ""
    folder: int | None = None
    alert: str = ""
    sort: str = DEFAULT_SORT
    size: int = DEFAULT_PAGE_SIZE
    page: int = 1

    @classmethod
    def from_query(cls, query) -> "TableState":
        sort = query.get("sort", DEFAULT_SORT)
        if sort.lstrip("-") not in selectors.ACCOUNT_TABLE_SORTS:
            sort = DEFAULT_SORT
        alert = query.get("alert", "")
        size = int_param(query.get("size"), DEFAULT_PAGE_SIZE)
        return cls(
            q=query.get("q", "").strip()[:100],
            folder=int_param(query.get("folder")),
            alert=alert if alert in selectors.ACCOUNT_TABLE_ALERT_FILTERS else "",
            sort=sort,
            size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
            page=max(1, int_param(query.get("page"), 1)),
        )

    def query(self, **changes) -> str:
        """The query string of this state with ``changes``; defaults are left out to keep URLs short."""
        state = replace(self, **changes)
        params = [("q", state.q), ("folder", state.folder or ""), ("alert", state.alert),
                  ("sort", "" if state.sort == DEFAULT_SORT else state.sort),
                  ("size", "" if state.size == DEFAULT_PAGE_SIZE else state.size),
                  ("page", "" if state.page == 1 else state.page)]
        return urlencode([(k, v) for k, v in params if v != ""])

    def url(self, name="console:accounts", **changes) -> str:
        query = self.query(**changes)
        return reverse(name) + (f"?{query}" if query else "")

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.folder or self.alert)

    def sort_link(self, key: str) -> dict:
        """Header link: a first click sorts money columns descending (largest first), text ascending."""
        current = self.sort.lstrip("-")
        descending = self.sort.startswith("-")
        if current == key:
            new, direction = (key if descending else f"-{key}"), ("desc" if descending else "asc")
        else:
            new, direction = (f"-{key}" if key not in ("name", "account_id", "folder") else key), ""
        return {"key": key, "url": self.url(sort=new, page=1), "direction": direction}


def _folder_choices(folders) -> tuple[list[dict], dict[int, tuple[str, str]]]:
    """Folders as an indented tree for the filter, and each folder's name and full path for the table."""
    paths, choices = {}, []
    for f in folders:  # ordered by materialized path: parents first
        parent = paths.get(f.parent_id)
        paths[f.pk] = (f.name, f"{parent[1]} / {f.name}" if parent else f.name)
        choices.append({"pk": f.pk, "label": "\u2003" * f.depth + f.name, "depth": f.depth})
    return choices, paths


def _table_queryset(viewer: Viewer, state: TableState, folder):
    qs = selectors.account_table(viewer.enterprise, search=state.q, folder=folder, alert=state.alert,
                                 sort=state.sort)
    if not viewer.is_admin:  # a member user sees its own row only (R-ORG-6)
        qs = qs.filter(pk=viewer.account.pk)
    return qs


def _summary_figures(viewer: Viewer, table_filter=None) -> dict:
    """The summary; for an administrator, with ``table_filter``, also ``table_rows`` (see ``_Paginator``)."""
    if viewer.is_admin:
        return summary.enterprise_figures(viewer.enterprise, table_filter=table_filter)
    return summary.account_figures(viewer.account)


class _Paginator(Paginator):
    """Django's paginator, told the number of rows when the summary counted them already (no COUNT query)."""

    def __init__(self, object_list, per_page, *, count: int | None = None):
        super().__init__(object_list, per_page)
        if count is not None:
            self.count = count  # takes the place of the cached property that would run COUNT


# --- The table -------------------------------------------------------------------------------------

@login_required
@require_safe
def account_list(request):
    """The unified account management table (R-UAM-1 to R-UAM-3); a fixed number of queries per page."""
    viewer = get_viewer(request, with_contract=True)
    state = TableState.from_query(request.GET)
    fragment = _fragment(request)
    template = "console/accounts/list.html"
    context = {"viewer": viewer, "state": state, "current_url": state.url()}

    if fragment == "account-summary":
        context["figures"] = _summary_figures(viewer)
        return _vary(render(request, f"{template}#account-summary", context))

    folders = list(Folder.objects.filter(enterprise=viewer.enterprise).order_by("path")) if viewer.is_admin else []
    folder = next((f for f in folders if f.pk == state.folder), None)
    if state.folder and folder is None:  # not a folder of this enterprise: no filter, never another's data
        state = replace(state, folder=None)
        context.update(state=state, current_url=state.url())
    folder_choices, folder_paths = _folder_choices(folders)

    figures = None  # the HTMX table refresh shows no summary
    if fragment != "account-table":
        table_filter = selectors.account_table_filter(search=state.q, folder=folder, alert=state.alert)
        figures = _summary_figures(viewer, table_filter)
    queryset = _table_queryset(viewer, state, folder)
    if viewer.is_admin:  # the enterprise's folders are loaded (the filter): the rows' folders come from them, no join
        queryset = queryset.select_related(None)
    paginator = _Paginator(queryset, state.size, count=figures.get("table_rows") if figures else None)
    page = paginator.get_page(state.page)
    rows = list(page.object_list)
    if page.number != state.page:
        state = replace(state, page=page.number)
        context.update(state=state, current_url=state.url())
    blockers = selectors.credit_blockers_for_page(viewer.enterprise, rows) if viewer.is_admin else {}
    actions = _RowActions(state.url(), admin=viewer.is_admin)
    for row in rows:
        if viewer.is_admin:
            row.folder_name, row.folder_path = folder_paths.get(row.folder_id, ("", ""))
        else:
            row.folder_name = row.folder_path = row.folder.name if row.folder_id else ""
        links = actions.links(row.pk)
        row.detail_url = links["detail"]
        row.actions = actions.cell(links, blockers.get(row.pk, {}))

    sort_links = {key: state.sort_link(key) for key in selectors.ACCOUNT_TABLE_SORTS}
    context.update(
        page=page, rows=rows, paginator=paginator,
        pages=[{"number": n, "url": state.url(page=n), "current": n == page.number}
               if n != paginator.ELLIPSIS else {"ellipsis": True}
               for n in paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1)],
        prev_url=state.url(page=page.number - 1) if page.has_previous() else "",
        next_url=state.url(page=page.number + 1) if page.has_next() else "",
        sort_links=sort_links,
        money_columns=[{"key": key, "label": label, "link": sort_links[key]} for key, label in MONEY_COLUMNS],
        sort_options=SORT_OPTIONS,
        export_url=state.url("console:accounts_export", page=1, sort=state.sort),
        page_sizes=PAGE_SIZES, alert_choices=ALERT_CHOICES, folder_choices=folder_choices,
        first_index=page.start_index(), last_index=page.end_index(),
    )
    if fragment == "account-table":
        context["oob"] = True
        response = render(request, f"{template}#account-table", context)
        if request.htmx.trigger != "account-table":  # a search, sort or page change, not a refresh
            push_url(response, state.url())
        return _vary(response)
    context["figures"] = figures
    return _vary(render(request, template, context))


class _RowActions:
    """The links of each row, and its action cell: a link to each drawer or, where a rule forbids the action, the
    reason (R-CR-1, R-CR-6, R-ORG-5), and the details link. All built once per page:

    - URLs are reversed and HTML-escaped once with a placeholder pk; each row's pk (digits) is put in. A
      ``{% url %}`` per link per row cost more than all the page's SQL.
    - The cell differs between rows only by their links as long as their reasons are the same, so the
      ``row-actions`` fragment is rendered once per pair of reasons, with markers where the links go, and cut at
      the markers; a row's cell is the pieces joined with its links. Rendering the fragment for every row cost a
      third of a row's template time. A marker starts with ``<``, which no escaped text can hold.
    """

    TEMPLATE = "console/accounts/list.html#row-actions"
    DRAWERS = (("credit", "console:credit_drawer"), ("transfer", "console:transfer_drawer"),
               ("records", "console:transfer_records_drawer"), ("alert", "console:alert_drawer"))
    PLACEHOLDER = "987654321"
    MARKER = re.compile(r"<@(\w+)@>")

    def __init__(self, current_url: str, *, admin: bool):
        query = "?" + urlencode({"next": current_url})
        urls = [("detail", reverse("console:account_detail", args=[self.PLACEHOLDER]))]
        if admin:
            urls += [(key, reverse(name, args=[self.PLACEHOLDER]) + query) for key, name in self.DRAWERS]
        self.urls = [(key, str(escape(url))) for key, url in urls]
        self.markers = {key: mark_safe(f"<@{key}@>") for key, _ in urls}
        self.admin = admin
        self.pieces = {}  # (credit reason, transfer reason) -> [text, link key, text, ..., text]

    def links(self, pk: int) -> dict[str, str]:
        pk = str(int(pk))
        return {key: mark_safe(url.replace(self.PLACEHOLDER, pk, 1)) for key, url in self.urls}

    def cell(self, links: dict[str, str], reasons: dict) -> str:
        key = (reasons.get("credit"), reasons.get("transfer"))
        pieces = self.pieces.get(key)
        if pieces is None:
            html = render_to_string(self.TEMPLATE, {"admin": self.admin, "reasons": reasons, "links": self.markers})
            pieces = self.pieces[key] = self.MARKER.split(html)
        return mark_safe("".join(links[piece] if i % 2 else piece for i, piece in enumerate(pieces)))


def _vary(response):
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


# --- Export ----------------------------------------------------------------------------------------

@login_required
@require_safe
def account_export(request):
    """The rows of the current search and filter, all pages, as .xlsx (R-UAM-4).

    A member user exports its own row only. Rows stream from the database into a temporary file.
    """
    viewer = get_viewer(request)
    state = TableState.from_query(request.GET)
    folder = None
    if viewer.is_admin and state.folder:
        folder = Folder.objects.filter(enterprise=viewer.enterprise, pk=state.folder).first()
    queryset = _table_queryset(viewer, state, folder)
    target = tempfile.TemporaryFile()
    write_xlsx(queryset, target)
    target.seek(0)
    return FileResponse(target, as_attachment=True, filename=export_filename(), content_type=XLSX)


# --- Account details -------------------------------------------------------------------------------

@login_required
@require_safe
def account_detail(request, pk):
    """Account details (R-UAM-5): figures, folder, flags and blockers, alerts, records.

    Only accounts the user may see: another enterprise's account, or another account for a member
    user, is 404 (R-ORG-6).
    """
    viewer = get_viewer(request)
    if viewer.is_admin:
        visible = Account.objects.filter(enterprise=viewer.enterprise)
    else:
        visible = Account.objects.filter(pk=viewer.account.pk)
    qs = sharing_selectors.annotate_coupons(selectors.with_figures(visible.select_related("folder", "enterprise")))
    account = qs.filter(pk=pk).first()
    if account is None:
        raise Http404("No such account")
    fragment = _fragment(request)
    figures = {
        "transferable_amount": selectors.transferable_amount(account),
        "below_threshold": account.alert_enabled and account.available_credit < account.alert_threshold,
    }
    context = {"viewer": viewer, "account": account, "figures": figures}
    if fragment == "account-figures":
        return _vary(render(request, "console/accounts/detail.html#account-figures", context))

    folder_path = ""
    if account.folder_id:
        ids = [int(p) for p in account.folder.path.strip("/").split("/") if p]
        names = dict(Folder.objects.filter(pk__in=ids).values_list("pk", "name"))
        folder_path = " / ".join(names[i] for i in ids if i in names)
    credit_reason = transfer_reason = ""
    if viewer.is_admin and account.enterprise_id:
        blocker = services.credit_blocker(account)
        credit_reason = blocker.message if blocker is not None else ""
        transfer_reason = selectors.credit_blockers_for_page(account.enterprise, [account])[account.pk]["transfer"] or ""
    if credit_reason and credit_reason == transfer_reason:
        blockers = [{"what": "Credit limit and transfer", "reason": credit_reason}]
    else:
        blockers = [{"what": what, "reason": reason} for what, reason in
                    (("Credit limit", credit_reason), ("Transfer", transfer_reason)) if reason]
    transfers = list(selectors.transfer_records(account)[: RECENT + 1])
    credit_changes = (list(selectors.credit_change_records(account.enterprise, account=account)[:RECENT])
                      if account.enterprise_id else [])
    for change in credit_changes:
        change.delta = change.new_value - change.old_value
    reasons = {"credit": credit_reason, "transfer": transfer_reason}
    next_query = "?" + urlencode({"next": request.path})
    admin_actions = [
        {"label": label, "reason": reasons.get(key, ""),
         "url": reverse(f"console:{name}", args=[account.pk]) + next_query}
        for key, label, name in (("credit", "Credit limit", "credit_drawer"), ("transfer", "Transfer", "transfer_drawer"),
                                 ("records", "Transfer records", "transfer_records_drawer"),
                                 ("alert", "Alert", "alert_drawer"))
    ] if viewer.is_admin else []
    context.update(
        admin_actions=admin_actions,
        folder_path=folder_path,
        blockers=blockers,
        transfers=transfers[:RECENT], more_transfers=len(transfers) > RECENT,
        credit_changes=credit_changes,
        alert_events=AlertEvent.objects.filter(account=account).order_by("-created_at", "-id")[:RECENT],
        charges=Charge.objects.filter(account=account).order_by("-created_at", "-id")[:RECENT],
        top_ups=TopUp.objects.filter(account=account).order_by("-created_at", "-id")[:RECENT],
        bills=Bill.objects.filter(account=account).order_by("-created_at", "-id")[:RECENT],
        today=selectors.today(),
    )
    return _vary(render(request, "console/accounts/detail.html", context))
