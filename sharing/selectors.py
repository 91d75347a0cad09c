"""Reads of equity asset sharing (SPEC section 7 and 8)."""

from dataclasses import dataclass, field

from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Account, Folder

from .models import Asset, AssetShare, AssetType, AutoShareRule, Deduction, Grant, ScopeType, UncoveredAccount, UsageRecord

SHARE_LIMIT = 100  # R-SH-4


def active_grants_at(at):
    """Grants whose interval contains ``at``: effective_from <= at < effective_to (open: no end)."""
    return Grant.objects.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at), effective_from__lte=at)


def annotate_coupons(queryset, at=None):
    """Annotate ``coupons``: the number of valid coupons each account can use (R-MON-3).

    A coupon counts when it is owned by the account, or shared to it by a grant in force at ``at``
    (default now); it is active, inside its validity window, and has remaining value. One correlated
    subquery: no query per row.
    """
    at = at or timezone.now()
    granted = active_grants_at(at).filter(asset=OuterRef("pk"), account=OuterRef(OuterRef("pk")))
    per_account = (
        Asset.objects.filter(asset_type=AssetType.COUPON, status=Asset.Status.ACTIVE, valid_from__lte=at,
                             valid_to__gt=at, remaining_value__gt=0)
        .filter(Q(owner=OuterRef("pk")) | Exists(granted))
        .order_by().values("asset_type").annotate(n=Count("pk")).values("n")
    )
    return queryset.annotate(coupons=Coalesce(Subquery(per_account, output_field=IntegerField()), Value(0)))


# --- Visibility (R-ORG-6, R-SH-8) ---

def enterprise_assets(enterprise_id):
    """Assets owned by accounts of the enterprise: the ones its administrator may share (R-SH-8)."""
    return Asset.objects.filter(owner__enterprise_id=enterprise_id)


def visible_assets(user):
    """What a console user may see: its enterprise's assets (administrator), else its account's own and received."""
    if not user.is_authenticated or user.account_id is None:
        return Asset.objects.none()
    if user.is_enterprise_admin:
        return enterprise_assets(user.account.enterprise_id)
    received = Grant.objects.filter(asset=OuterRef("pk"), account_id=user.account_id)
    return Asset.objects.filter(Q(owner_id=user.account_id) | Exists(received))


def asset_list(queryset, *, asset_type: str, q: str = "", status: str = "", shared: str = "", at=None):
    """One tab of the asset list: search by asset ID, name or owner; filter by status and by shared or not.

    Annotates ``shared_count`` (accounts with an open grant) and ``uncovered_count``; no query per row.
    """
    at = at or timezone.now()
    qs = queryset.filter(asset_type=asset_type).select_related("owner")
    if q:
        qs = qs.filter(Q(asset_id__icontains=q) | Q(name__icontains=q) | Q(owner__name__icontains=q)
                       | Q(owner__account_id__icontains=q))
    if status == "valid":
        qs = qs.filter(status=Asset.Status.ACTIVE, valid_from__lte=at, valid_to__gt=at)
    elif status == "expired":
        qs = qs.filter(status=Asset.Status.ACTIVE, valid_to__lte=at)
    elif status == "upcoming":
        qs = qs.filter(status=Asset.Status.ACTIVE, valid_from__gt=at)
    elif status == "cancelled":
        qs = qs.filter(status=Asset.Status.CANCELLED)
    if shared == "yes":
        qs = qs.exclude(scope_type=ScopeType.NONE)
    elif shared == "no":
        qs = qs.filter(scope_type=ScopeType.NONE)
    open_grants = (Grant.objects.filter(asset=OuterRef("pk"), effective_to__isnull=True).order_by()
                   .values("asset").annotate(n=Count("pk")).values("n"))
    uncovered = (UncoveredAccount.objects.filter(asset=OuterRef("pk")).order_by()
                 .values("asset").annotate(n=Count("pk")).values("n"))
    return qs.annotate(
        shared_count=Coalesce(Subquery(open_grants, output_field=IntegerField()), Value(0)),
        uncovered_count=Coalesce(Subquery(uncovered, output_field=IntegerField()), Value(0)),
    ).order_by("valid_to", "pk")


def scope_members(asset: Asset) -> dict:
    rows = list(AssetShare.objects.filter(asset=asset).select_related("account", "folder"))
    return {"accounts": [r.account for r in rows if r.account_id], "folders": [r.folder for r in rows if r.folder_id]}


def share_history(asset: Asset):
    """Every grant of the asset, newest first: recipient, effective from, effective to (R-SH-6, R-SH-7)."""
    return Grant.objects.filter(asset=asset).select_related("account").order_by("-effective_from", "-id")


def uncovered_accounts(asset: Asset):
    return UncoveredAccount.objects.filter(asset=asset).select_related("account").order_by("since", "pk")


# --- Scope resolution (R-SH-2, R-SH-4, R-SH-5) ---

@dataclass
class Resolution:
    """The accounts a scope reaches. ``eligible`` receive the asset; ``excluded`` do not, with the reason."""

    eligible: list = field(default_factory=list)
    excluded: list = field(default_factory=list)  # (account, reason)

    @property
    def count(self) -> int:
        return len(self.eligible)

    @property
    def over_limit(self) -> bool:
        return self.count > SHARE_LIMIT


REASON_OWNER = "owner of the asset"
REASON_OTHER_COMPANY = "verified as a different company (R-SH-5)"


def accounts_of_folders(enterprise_id, folders):
    """Accounts in the subtrees of ``folders`` (R-SH-2)."""
    cond = Q()
    for folder in folders:
        cond |= Q(folder__path__startswith=folder.path)
    if not cond:
        return Account.objects.none()
    return Account.objects.filter(cond, enterprise_id=enterprise_id)


def resolve_scope(*, enterprise, owner, scope_type, accounts=(), folders=()) -> Resolution:
    """The resolved set of a scope for an asset of ``owner`` (or for a rule: ``owner=None``)."""
    if scope_type == ScopeType.FOLDERS:
        candidates = accounts_of_folders(enterprise.pk, folders)
    elif scope_type == ScopeType.ACCOUNTS:
        candidates = Account.objects.filter(pk__in=[a.pk for a in accounts], enterprise_id=enterprise.pk)
    else:
        return Resolution()
    company = owner.verified_company_id if owner is not None else enterprise.company_id
    result = Resolution()
    for account in candidates.order_by("account_id"):
        if owner is not None and account.pk == owner.pk:
            result.excluded.append((account, REASON_OWNER))
        elif not account.verified_company_id or account.verified_company_id != company:
            result.excluded.append((account, REASON_OTHER_COMPANY))
        else:
            result.eligible.append(account)
    return result


def candidate_accounts(enterprise_id, *, q: str = "", limit: int = 50):
    """The searchable picker of the Share drawer: accounts of the enterprise by name or ID."""
    qs = Account.objects.filter(enterprise_id=enterprise_id).select_related("folder")
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(account_id__icontains=q))
    return qs.order_by("name", "account_id")[:limit]


def enterprise_folders(enterprise_id):
    return Folder.objects.filter(enterprise_id=enterprise_id).order_by("path")


def auto_rules(enterprise_id) -> dict[str, AutoShareRule]:
    rules = AutoShareRule.objects.filter(enterprise_id=enterprise_id).prefetch_related("accounts", "folders")
    return {r.asset_type: r for r in rules}


# --- For the account details page (R-UAM-5) ---

def received_assets(account: Account, *, at=None):
    """Assets shared to the account and in force now, with since when (the open grant's effective from)."""
    return (Grant.objects.filter(account=account, effective_to__isnull=True)
            .select_related("asset", "asset__owner").order_by("asset__asset_type", "-effective_from"))


def owned_assets(account: Account):
    """Assets the account owns, with the number of accounts each is shared with."""
    open_grants = (Grant.objects.filter(asset=OuterRef("pk"), effective_to__isnull=True).order_by()
                   .values("asset").annotate(n=Count("pk")).values("n"))
    return (Asset.objects.filter(owner=account)
            .annotate(shared_count=Coalesce(Subquery(open_grants, output_field=IntegerField()), Value(0)))
            .order_by("asset_type", "valid_to", "pk"))


def usage_deductions(account: Account, *, limit: int = 50):
    """The account's latest usage records, each with the deduction lines that paid for it."""
    lines = Deduction.objects.select_related("asset").order_by("position")
    return (UsageRecord.objects.filter(account=account)
            .prefetch_related(Prefetch("deductions", queryset=lines))
            .order_by("-usage_hour", "-id")[:limit])
