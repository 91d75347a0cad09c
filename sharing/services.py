"""Writes of equity asset sharing (SPEC section 7): provisioning, sharing, rules, and following membership.

Each service takes keyword-only arguments, runs in one transaction, and either does everything or raises
``DomainError`` (with the figure) and changes nothing. Lock order: accounts (by the account services), then
assets by primary key.
"""

import secrets
from decimal import Decimal, InvalidOperation

from django.db.models import Q
from django.utils import timezone

from accounts.models import Account, Folder
from accounts.services import lock_directory, require_account_manager, require_enterprise_admin
from core.audit import audit_event
from core.db import atomic_service
from core.errors import DomainError, PermissionDenied
from core.money import parse_amount

from . import selectors
from .models import Asset, AssetShare, AssetType, AutoShareRule, Grant, ScopeType, UncoveredAccount
from .selectors import SHARE_LIMIT

MSG_NOT_ENTERPRISE_ASSET = ("Asset {asset} is not owned by an account of your enterprise: only assets of your "
                            "enterprise's accounts can be shared, and an account that received an asset cannot "
                            "share it on (R-SH-8).")
MSG_OVER_LIMIT = ("This share reaches {count} accounts; one asset is shared with at most {limit} accounts "
                  "(owner excluded), so it is refused (R-SH-4).")
MSG_OTHER_COMPANY = ("Account {account} is verified as a different company from the asset's owner, so it cannot "
                     "receive the asset (R-SH-5).")
MSG_OWNER_OTHER_COMPANY = ("The owner account {account} is verified as a different company from the enterprise, "
                           "so sharing its assets is refused (R-ORG-5).")
MSG_NOT_IN_ENTERPRISE = "Account {account} is not an account of this enterprise."
MSG_FOLDER_NOT_IN_ENTERPRISE = "Folder {folder} is not a folder of this enterprise."
MSG_EMPTY_SCOPE = "Choose at least one {what}."
MSG_SCOPE_TYPE = "Choose a scope: accounts or folders."
MSG_ASSET_NOT_USABLE = "Asset {asset} is {status}; only a valid or upcoming asset can be shared."
MSG_NOT_SHARED = "Asset {asset} is not shared."
MSG_VALIDITY = "The validity window must end after it starts."


def _pks(values) -> list[int]:
    return [v.pk if hasattr(v, "pk") else int(v) for v in values]


def _enterprise_asset(actor, asset) -> tuple[int, Asset]:
    """Lock the asset and check that the actor administers the enterprise of its owner (R-SH-8)."""
    enterprise_id = require_enterprise_admin(actor)
    lock_directory(enterprise_id)  # before the asset: no membership change can slip past a folder scope (R-SH-2)
    asset = Asset.objects.select_for_update(of=("self",)).select_related("owner__enterprise").get(pk=asset.pk)
    if asset.owner.enterprise_id != enterprise_id:
        raise PermissionDenied(MSG_NOT_ENTERPRISE_ASSET.format(asset=asset.asset_id), rule="R-SH-8")
    owner = asset.owner
    if owner.verified_company_id != owner.enterprise.company_id:
        raise DomainError(MSG_OWNER_OTHER_COMPANY.format(account=owner.account_id), rule="R-ORG-5")
    return enterprise_id, asset


def _scope_objects(enterprise_id, scope_type, accounts, folders):
    """Load and check the scope's members: accounts or folders of the enterprise."""
    if scope_type == ScopeType.ACCOUNTS:
        pks = _pks(accounts)
        if not pks:
            raise DomainError(MSG_EMPTY_SCOPE.format(what="account"), field="accounts", rule="R-SH-2")
        rows = list(Account.objects.filter(pk__in=pks))
        for account in rows:
            if account.enterprise_id != enterprise_id:
                raise DomainError(MSG_NOT_IN_ENTERPRISE.format(account=account.account_id), field="accounts",
                                  rule="R-SH-8")
        if len(rows) != len(set(pks)):
            raise DomainError("An account you chose does not exist.", field="accounts")
        return rows, []
    if scope_type == ScopeType.FOLDERS:
        pks = _pks(folders)
        if not pks:
            raise DomainError(MSG_EMPTY_SCOPE.format(what="folder"), field="folders", rule="R-SH-2")
        rows = list(Folder.objects.filter(pk__in=pks))
        for folder in rows:
            if folder.enterprise_id != enterprise_id:
                raise DomainError(MSG_FOLDER_NOT_IN_ENTERPRISE.format(folder=folder.name), field="folders")
        if len(rows) != len(set(pks)):
            raise DomainError("A folder you chose does not exist.", field="folders")
        return [], rows
    raise DomainError(MSG_SCOPE_TYPE, field="scope_type", rule="R-SH-2")


def _set_scope(asset: Asset, scope_type, accounts, folders, *, at) -> None:
    AssetShare.objects.filter(asset=asset).delete()
    AssetShare.objects.bulk_create([AssetShare(asset=asset, account=a) for a in accounts]
                                   + [AssetShare(asset=asset, folder=f) for f in folders])
    asset.scope_type = scope_type
    asset.shared_at = at if scope_type != ScopeType.NONE else None
    asset.save(update_fields=["scope_type", "shared_at"])


def _apply_recipients(asset: Asset, recipients: list[Account], *, at, uncovered: list[Account] = ()) -> dict:
    """Make the open grants of ``asset`` exactly ``recipients``: end the others at ``at``, open the new ones."""
    open_grants = {g.account_id: g for g in Grant.objects.filter(asset=asset, effective_to__isnull=True)}
    wanted = {a.pk for a in recipients}
    ended = [pk for pk in open_grants if pk not in wanted]
    Grant.objects.filter(asset=asset, effective_to__isnull=True, account_id__in=ended).update(effective_to=at)
    added = [Grant(asset=asset, account=a, effective_from=at) for a in recipients if a.pk not in open_grants]
    Grant.objects.bulk_create(added)
    UncoveredAccount.objects.filter(asset=asset).delete()
    UncoveredAccount.objects.bulk_create([UncoveredAccount(asset=asset, account=a, since=at) for a in uncovered])
    return {"added": len(added), "ended": len(ended), "kept": len(wanted) - len(added)}


@atomic_service
def share_asset(*, actor, asset: Asset, scope_type: str, accounts=(), folders=()) -> dict:
    """Share ``asset`` with a scope (accounts or folders), replacing its previous scope (R-SH-2 to R-SH-5, R-SH-8).

    Recipients already covered keep their grant; new ones get a grant effective now; accounts no longer in
    the scope have their grant ended now (R-SH-7). Returns the counts added, ended and kept.
    """
    enterprise_id, asset = _enterprise_asset(actor, asset)
    at = timezone.now()
    if asset.status == Asset.Status.CANCELLED or asset.valid_to <= at:
        raise DomainError(MSG_ASSET_NOT_USABLE.format(asset=asset.asset_id, status=asset.status_at(at).lower()))
    accounts, folders = _scope_objects(enterprise_id, scope_type, accounts, folders)
    resolution = selectors.resolve_scope(enterprise=asset.owner.enterprise, owner=asset.owner,
                                         scope_type=scope_type, accounts=accounts, folders=folders)
    if scope_type == ScopeType.ACCOUNTS:
        for account, reason in resolution.excluded:
            if reason == selectors.REASON_OTHER_COMPANY:
                raise DomainError(MSG_OTHER_COMPANY.format(account=account.account_id), field="accounts",
                                  rule="R-SH-5")
    if resolution.over_limit:
        raise DomainError(MSG_OVER_LIMIT.format(count=resolution.count, limit=SHARE_LIMIT), field=scope_type,
                          rule="R-SH-4", code="over_limit")
    before = {"scope_type": asset.scope_type}
    _set_scope(asset, scope_type, accounts, folders, at=at)
    counts = _apply_recipients(asset, resolution.eligible, at=at)
    audit_event(actor=actor, action="asset_share", obj=asset, enterprise=asset.owner.enterprise, before=before,
                after={"scope_type": scope_type, "accounts": [a.account_id for a in accounts],
                       "folders": [f.name for f in folders], **counts}, at=at)
    return counts


@atomic_service
def unshare_asset(*, actor, asset: Asset) -> dict:
    """End every grant of ``asset`` now; usage before keeps its deductions (R-SH-7)."""
    _, asset = _enterprise_asset(actor, asset)
    if asset.scope_type == ScopeType.NONE and not Grant.objects.filter(asset=asset, effective_to__isnull=True).exists():
        raise DomainError(MSG_NOT_SHARED.format(asset=asset.asset_id))
    at = timezone.now()
    before = {"scope_type": asset.scope_type}
    _set_scope(asset, ScopeType.NONE, [], [], at=at)
    counts = _apply_recipients(asset, [], at=at)
    audit_event(actor=actor, action="asset_unshare", obj=asset, enterprise=asset.owner.enterprise, before=before,
                after=counts, at=at)
    return counts


@atomic_service
def auto_rule_set(*, actor, enterprise, asset_type: str, scope_type: str, accounts=(), folders=(),
                  enabled: bool = True) -> AutoShareRule:
    """Set the automatic sharing rule of an asset type; it applies to assets provisioned later only (R-SH-3)."""
    enterprise_id = require_enterprise_admin(actor, enterprise.pk)
    if asset_type not in AssetType.values:
        raise DomainError("Choose an asset type.", field="asset_type")
    accounts, folders = _scope_objects(enterprise_id, scope_type, accounts, folders)
    resolution = selectors.resolve_scope(enterprise=enterprise, owner=None, scope_type=scope_type,
                                         accounts=accounts, folders=folders)
    if resolution.over_limit:
        raise DomainError(MSG_OVER_LIMIT.format(count=resolution.count, limit=SHARE_LIMIT), field=scope_type,
                          rule="R-SH-4", code="over_limit")
    at = timezone.now()
    rule, _ = AutoShareRule.objects.select_for_update().get_or_create(
        enterprise=enterprise, asset_type=asset_type,
        defaults={"scope_type": scope_type, "updated_at": at, "updated_by": actor})
    rule.scope_type = scope_type
    rule.enabled = bool(enabled)
    rule.updated_at = at
    rule.updated_by = actor
    rule.save()
    rule.accounts.set(accounts)
    rule.folders.set(folders)
    audit_event(actor=actor, action="auto_share_rule_set", obj=rule, enterprise=enterprise,
                after={"asset_type": asset_type, "scope_type": scope_type, "enabled": rule.enabled,
                       "accounts": [a.account_id for a in accounts], "folders": [f.name for f in folders]}, at=at)
    return rule


# ---------------------------------------------------------------------------------------------
# Provisioning (back office, seed_demo): applies the automatic sharing rule of its type (R-SH-3)
# ---------------------------------------------------------------------------------------------

ID_PREFIX = {AssetType.SAVINGS_PLAN: "SP", AssetType.RESERVED_INSTANCE: "RI", AssetType.SCU_PACKAGE: "SCU",
             AssetType.COUPON: "CP"}


def _positive_decimal(value, *, field, places=None, message):
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise DomainError(message, field=field)
    if not number.is_finite() or number <= 0:
        raise DomainError(message, field=field)
    if places is not None and number != number.quantize(Decimal(1).scaleb(-places)):
        raise DomainError(message, field=field)
    return number


def _products(products) -> list[str]:
    if isinstance(products, str):
        products = products.split(",")
    return sorted({p.strip() for p in (products or []) if p and p.strip()})


@atomic_service
def asset_provision(*, actor, owner: Account, asset_type: str, valid_from, valid_to, name: str = "",
                    asset_id: str | None = None, products=(), hourly_commitment=None, discount_rate=None,
                    instance_type: str = "", region: str = "", instance_count=None, capacity_gb=None,
                    face_value=None) -> Asset:
    """Provision an asset for ``owner`` and apply its enterprise's automatic sharing rule (R-SH-1, R-SH-3)."""
    require_account_manager(actor)
    if asset_type not in AssetType.values:
        raise DomainError("Choose an asset type.", field="asset_type")
    if valid_to <= valid_from:
        raise DomainError(MSG_VALIDITY, field="valid_to")
    if owner.enterprise_id is not None:
        lock_directory(owner.enterprise_id)  # the automatic rule may resolve a folder scope (R-SH-2, R-SH-3)
    at = timezone.now()
    fields = {"products": _products(products)}
    if asset_type == AssetType.SAVINGS_PLAN:
        fields["hourly_commitment"] = parse_amount(hourly_commitment, field="hourly_commitment")
        rate = _positive_decimal(discount_rate, field="discount_rate", places=4,
                                 message="The discount rate is a fraction above 0 and below 1, like 0.2500.")
        if rate >= 1:
            raise DomainError("The discount rate is a fraction above 0 and below 1, like 0.2500.", field="discount_rate")
        fields["discount_rate"] = rate
        if not fields["products"]:
            raise DomainError("A savings plan needs at least one eligible product.", field="products")
    elif asset_type == AssetType.RESERVED_INSTANCE:
        if not (instance_type or "").strip() or not (region or "").strip():
            raise DomainError("A reserved instance needs an instance type and a region.", field="instance_type")
        count = _positive_decimal(instance_count, field="instance_count", places=0,
                                  message="The instance count is a whole number of at least 1.")
        fields.update(instance_type=instance_type.strip(), region=region.strip(), instance_count=int(count),
                      products=[])
    elif asset_type == AssetType.SCU_PACKAGE:
        fields["capacity_gb"] = _positive_decimal(capacity_gb, field="capacity_gb", places=3,
                                                  message="The capacity is a number of GB above 0.")
        if not fields["products"]:
            raise DomainError("An SCU package needs at least one storage product.", field="products")
    else:
        value = parse_amount(face_value, field="face_value")
        fields.update(face_value=value, remaining_value=value)
    owner = Account.objects.select_related("enterprise").get(pk=owner.pk)
    asset = Asset.objects.create(
        asset_id=asset_id or f"{ID_PREFIX[asset_type]}-{secrets.token_hex(5).upper()}",
        asset_type=asset_type, name=(name or "")[:100], owner=owner, valid_from=valid_from, valid_to=valid_to,
        created_at=at, **fields)
    audit_event(actor=actor, action="asset_provision", obj=asset, enterprise=owner.enterprise,
                after={"asset_type": asset_type, "owner": owner.account_id}, at=at)
    _apply_auto_rule(asset, at=at)
    return asset


def _apply_auto_rule(asset: Asset, *, at) -> None:
    owner = asset.owner
    if owner.enterprise_id is None or owner.verified_company_id != owner.enterprise.company_id:
        return
    rule = (AutoShareRule.objects.filter(enterprise_id=owner.enterprise_id, asset_type=asset.asset_type, enabled=True)
            .prefetch_related("accounts", "folders").first())
    if rule is None:
        return
    accounts = [a for a in rule.accounts.all() if a.enterprise_id == owner.enterprise_id]
    folders = list(rule.folders.all())
    resolution = selectors.resolve_scope(enterprise=owner.enterprise, owner=owner, scope_type=rule.scope_type,
                                         accounts=accounts, folders=folders)
    # The rule's set was within the limit when saved; if it grew since, the first 100 (by account ID)
    # receive the asset and the rest are shown as uncovered (R-SH-4).
    covered, uncovered = resolution.eligible[:SHARE_LIMIT], resolution.eligible[SHARE_LIMIT:]
    _set_scope(asset, rule.scope_type, accounts, folders, at=at)
    counts = _apply_recipients(asset, covered, at=at, uncovered=uncovered)
    audit_event(actor=None, action="asset_auto_share", obj=asset, enterprise=owner.enterprise,
                after={"rule": rule.pk, "scope_type": rule.scope_type, **counts, "uncovered": len(uncovered)}, at=at)


@atomic_service
def asset_cancel(*, actor, asset: Asset) -> Asset:
    """Back office: cancel an asset; its grants end now (usage before keeps its deductions)."""
    require_account_manager(actor)
    asset = Asset.objects.select_for_update().get(pk=asset.pk)
    at = timezone.now()
    asset.status = Asset.Status.CANCELLED
    asset.save(update_fields=["status"])
    _set_scope(asset, ScopeType.NONE, [], [], at=at)
    _apply_recipients(asset, [], at=at)
    return asset


# ---------------------------------------------------------------------------------------------
# Following membership (R-SH-2, R-SH-4, R-SH-7): receiver of accounts.signals.membership_changed
# ---------------------------------------------------------------------------------------------

def on_membership_changed(sender, *, account, old_enterprise_id, old_folder, new_folder, at, **kwargs) -> None:
    """Runs inside the membership transaction: folder-scoped grants follow the account at once.

    * joins (or moves into) a folder of a folder scope: a grant from ``at``, or, when the asset is already
      shared with 100 accounts, recorded as uncovered (R-SH-4); never from an owner verified as another company
      than its enterprise: nothing of such an account is shared (R-ORG-5);
    * leaves a folder scope (moved out, or removed from the directory): its grant ends at ``at`` (R-SH-7);
    * removed from the directory: every grant of its former enterprise's assets ends, it is no longer listed
      as uncovered by them, and its own assets stop being shared (they are no longer assets of that
      enterprise, R-SH-8).
    """
    enterprise_ids = {e for e in (old_enterprise_id, account.enterprise_id) if e}
    if not enterprise_ids:
        return
    path = new_folder.path if new_folder is not None else None
    left_enterprise = account.enterprise_id is None or account.enterprise_id != old_enterprise_id
    folder_assets = (Asset.objects.filter(owner__enterprise_id__in=enterprise_ids, scope_type=ScopeType.FOLDERS)
                     .exclude(owner=account).select_for_update(of=("self",)).select_related("owner__enterprise")
                     .order_by("pk"))
    scope_paths: dict[int, list[str]] = {}
    for row in AssetShare.objects.filter(asset__in=folder_assets.values("pk"), folder__isnull=False).values(
            "asset_id", "folder__path"):
        scope_paths.setdefault(row["asset_id"], []).append(row["folder__path"])
    open_grants = set(Grant.objects.filter(account=account, effective_to__isnull=True).values_list("asset_id", flat=True))
    end, uncover_clear = [], []
    for asset in folder_assets:
        owner = asset.owner
        should = (path is not None and account.enterprise_id == owner.enterprise_id
                  and account.verified_company_id == owner.verified_company_id
                  and owner.verified_company_id == owner.enterprise.company_id
                  and any(path.startswith(p) for p in scope_paths.get(asset.pk, []))
                  and asset.status == Asset.Status.ACTIVE and asset.valid_to > at)
        has = asset.pk in open_grants
        if has and not should:
            end.append(asset.pk)
        elif should and not has:
            if Grant.objects.filter(asset=asset, effective_to__isnull=True).count() < SHARE_LIMIT:
                Grant.objects.create(asset=asset, account=account, effective_from=at)
                uncover_clear.append(asset.pk)
            else:
                UncoveredAccount.objects.get_or_create(asset=asset, account=account, defaults={"since": at})
        elif not should:
            uncover_clear.append(asset.pk)
    if left_enterprise and old_enterprise_id:
        # Leaving the directory: every grant of the old enterprise's assets ends, the account leaves
        # account scopes, and its own assets are no longer shared.
        end += list(Grant.objects.filter(account=account, effective_to__isnull=True,
                                         asset__owner__enterprise_id=old_enterprise_id)
                    .exclude(asset_id__in=end).values_list("asset_id", flat=True))
        AssetShare.objects.filter(account=account).delete()
        UncoveredAccount.objects.filter(account=account, asset__owner__enterprise_id=old_enterprise_id).delete()
        own = list(Asset.objects.filter(owner=account).exclude(scope_type=ScopeType.NONE).select_for_update())
        for asset in own:
            _set_scope(asset, ScopeType.NONE, [], [], at=at)
            _apply_recipients(asset, [], at=at)
    if end:
        Grant.objects.filter(account=account, asset_id__in=end, effective_to__isnull=True).update(effective_to=at)
    if uncover_clear or end:
        UncoveredAccount.objects.filter(account=account, asset_id__in=uncover_clear + end).delete()


def on_company_changed(sender, *, account, old_company_id, at, **kwargs) -> None:
    """Runs inside the re-verification transaction: grants between different companies end at once (R-SH-5).

    The account stops receiving assets of owners of another company, and its own assets stop applying to
    accounts of another company. Usage before ``at`` keeps its deductions (R-SH-7). An account of another
    company than the owner is no longer listed as uncovered (R-SH-4): it could not receive the asset anyway.
    Re-verification starts no grant.
    """
    company = account.verified_company_id
    received = Grant.objects.filter(account=account, effective_to__isnull=True)
    if company:
        received = received.exclude(asset__owner__verified_company_id=company)
    given = Grant.objects.filter(asset__owner=account, effective_to__isnull=True).exclude(account=account)
    if company:
        given = given.exclude(account__verified_company_id=company)
    ended = list(received.values_list("pk", flat=True)) + list(given.values_list("pk", flat=True))
    if ended:
        Grant.objects.filter(pk__in=ended).update(effective_to=at)
    uncovered = UncoveredAccount.objects.filter(Q(account=account) | Q(asset__owner=account))
    if company:
        uncovered = uncovered.exclude(account=account, asset__owner__verified_company_id=company).exclude(
            asset__owner=account, account__verified_company_id=company)
    uncovered.delete()
