"""Equity assets, their sharing, and usage deduction (SPEC sections 7 and 8).

Design choices
--------------
* **One ``Asset`` table with nullable typed columns**, guarded by one CHECK constraint per type, rather
  than a table per type. The four types share everything that matters to sharing (owner, validity,
  status, scope, grants, deductions): one table gives one reference from ``Grant`` and ``Deduction``,
  one list query per tab, and one candidate query when rating (all four types of a batch in one
  ``SELECT``). The typed columns are few (nine) and the CHECKs make a savings plan without a commitment,
  or a coupon with an instance count, impossible in the database itself.
* **The scope is stored as rows** (``AssetShare``: an account or a folder of an asset) plus
  ``Asset.scope_type``; the **effect** of a scope is stored as ``Grant`` rows, one per (asset, account)
  and interval. Grants are never deleted, only ended (``effective_to``), so the share history and the
  eligibility of late-billed usage (R-SH-6, R-SH-7) are read from the same rows. At most one open
  grant per (asset, account) is a partial UNIQUE constraint.
* **Per-hour consumption state** (``AssetHourUsage``): instance-hours of a reserved instance, GB of an
  SCU package, commitment money of a savings plan used in one usage hour, by all the accounts the asset
  applies to together (R-US-3 to R-US-5). A coupon's state is its ``remaining_value``.
* A ``UsageRecord`` is rated once; its ``Deduction`` lines say what paid for it. Their ``amount``
  (pay-as-you-go money covered) always sums exactly to the record's ``amount`` (R-MON-1).
* **The queue of unrated records is a table of its own** (``UsagePending``: one narrow row per unrated
  record), not a column of the record. Rating a batch deletes its queue rows (``DELETE ... RETURNING``), so it
  never rewrites the wide usage row and its six indexes: with a ``rated_at`` column and a partial index on it,
  every rating was a non-HOT update writing all the indexes again (``bench/RESULTS.md``, section 4). A
  database trigger inserts the queue row with the record, whatever inserts it (the import, ``bulk_create``,
  a test, ``COPY``), so no record can be created outside the queue; a record is rated exactly when its queue
  row has been deleted by a committed rating (R-US-7).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from accounts.models import MONEY, Account, Enterprise, Folder
from core.money import ZERO

QUANTITY = {"max_digits": 20, "decimal_places": 6}


class AssetType(models.TextChoices):
    SAVINGS_PLAN = "savings_plan", "Savings plan"
    RESERVED_INSTANCE = "reserved_instance", "Reserved instance"
    SCU_PACKAGE = "scu_package", "SCU package"
    COUPON = "coupon", "Coupon"


class ScopeType(models.TextChoices):
    NONE = "none", "Not shared"
    ACCOUNTS = "accounts", "Accounts"
    FOLDERS = "folders", "Folders"


# Deduction order of R-US-2 (the balance comes last).
DEDUCTION_ORDER = [AssetType.RESERVED_INSTANCE, AssetType.SCU_PACKAGE, AssetType.SAVINGS_PLAN, AssetType.COUPON]

_NO_SP = Q(hourly_commitment__isnull=True, discount_rate__isnull=True)
_NO_RI = Q(instance_count__isnull=True, instance_type="")
_NO_SCU = Q(capacity_gb__isnull=True)
_NO_COUPON = Q(face_value__isnull=True, remaining_value__isnull=True)


class Asset(models.Model):
    """An equity asset of an owner account (R-SH-1)."""

    Type = AssetType

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELLED = "cancelled", "Cancelled"

    asset_id = models.CharField("asset ID", max_length=32, unique=True)
    asset_type = models.CharField(max_length=20, choices=AssetType.choices)
    name = models.CharField(max_length=100, blank=True)
    owner = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="owned_assets")
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Eligible products (savings plan), storage products (SCU package), applicable products (coupon;
    # empty means all). Product codes, matched exactly.
    products = models.JSONField(default=list, blank=True)
    # Savings plan (R-US-5)
    hourly_commitment = models.DecimalField(**MONEY, null=True, blank=True)
    discount_rate = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    # Reserved instance (R-US-3); region is also used by nothing else
    instance_type = models.CharField(max_length=64, blank=True)
    region = models.CharField(max_length=32, blank=True)
    instance_count = models.PositiveIntegerField(null=True, blank=True)
    # SCU package (R-US-4)
    capacity_gb = models.DecimalField(max_digits=14, decimal_places=3, null=True, blank=True)
    # Coupon (R-US-6)
    face_value = models.DecimalField(**MONEY, null=True, blank=True)
    remaining_value = models.DecimalField(**MONEY, null=True, blank=True)
    # The current scope (R-SH-2); its members are AssetShare rows.
    scope_type = models.CharField(max_length=8, choices=ScopeType.choices, default=ScopeType.NONE)
    shared_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["valid_to", "id"]
        indexes = [models.Index(fields=["owner", "asset_type"]), models.Index(fields=["asset_type", "valid_to"])]
        constraints = [
            models.CheckConstraint(condition=Q(valid_to__gt=F("valid_from")), name="asset_valid_to_after_from"),
            models.CheckConstraint(
                condition=~Q(asset_type="savings_plan") | (
                    Q(hourly_commitment__isnull=False, discount_rate__isnull=False, hourly_commitment__gt=0,
                      discount_rate__gt=0, discount_rate__lt=1)
                    & _NO_RI & _NO_SCU & _NO_COUPON),
                name="asset_savings_plan_fields"),
            models.CheckConstraint(
                condition=~Q(asset_type="reserved_instance") | (
                    Q(instance_count__isnull=False, instance_count__gt=0) & ~Q(instance_type="") & ~Q(region="")
                    & _NO_SP & _NO_SCU & _NO_COUPON),
                name="asset_reserved_instance_fields"),
            models.CheckConstraint(
                condition=~Q(asset_type="scu_package") | (Q(capacity_gb__isnull=False, capacity_gb__gt=0) & _NO_SP & _NO_RI & _NO_COUPON),
                name="asset_scu_package_fields"),
            models.CheckConstraint(
                condition=~Q(asset_type="coupon") | (
                    Q(face_value__isnull=False, remaining_value__isnull=False, face_value__gt=0, remaining_value__gte=0,
                       remaining_value__lte=F("face_value"))
                    & _NO_SP & _NO_RI & _NO_SCU),
                name="asset_coupon_fields"),
            models.CheckConstraint(
                condition=Q(asset_type__in=[t.value for t in AssetType]), name="asset_type_known"),
        ]

    def __str__(self):
        return self.asset_id

    def status_at(self, at) -> str:
        """The status shown: Cancelled, Not yet valid, Valid, Expired, or Used up (a coupon at 0)."""
        if self.status == self.Status.CANCELLED:
            return "Cancelled"
        if at < self.valid_from:
            return "Not yet valid"
        if at >= self.valid_to:
            return "Expired"
        if self.asset_type == AssetType.COUPON and self.remaining_value is not None and self.remaining_value <= 0:
            return "Used up"
        return "Valid"

    def is_usable_at(self, at) -> bool:
        return self.status_at(at) == "Valid"

    @property
    def capacity_label(self) -> str:
        """What one unit of the asset is, for lists: '2 x ecs.g7.large in cn-hangzhou', '500 GB'..."""
        if self.asset_type == AssetType.SAVINGS_PLAN:
            return f"{self.hourly_commitment}/hour at {self.discount_rate * 100:.2f}% off"
        if self.asset_type == AssetType.RESERVED_INSTANCE:
            return f"{self.instance_count} x {self.instance_type} in {self.region}"
        if self.asset_type == AssetType.SCU_PACKAGE:
            return f"{self.capacity_gb.normalize():f} GB"
        return f"{self.remaining_value} of {self.face_value}"


class AssetShare(models.Model):
    """One member of an asset's scope: an account or a folder (R-SH-2)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="scope_members")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    folder = models.ForeignKey(Folder, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(account__isnull=True) ^ Q(folder__isnull=True),
                                   name="asset_share_account_xor_folder"),
            models.UniqueConstraint(fields=["asset", "account"], name="asset_share_account_once"),
            models.UniqueConstraint(fields=["asset", "folder"], name="asset_share_folder_once"),
        ]


class AutoShareRule(models.Model):
    """Per (enterprise, asset type): share each newly provisioned asset of the type with a scope (R-SH-3)."""

    enterprise = models.ForeignKey(Enterprise, on_delete=models.CASCADE, related_name="auto_share_rules")
    asset_type = models.CharField(max_length=20, choices=AssetType.choices)
    enabled = models.BooleanField(default=True)
    scope_type = models.CharField(max_length=8, choices=ScopeType.choices, default=ScopeType.ACCOUNTS)
    accounts = models.ManyToManyField(Account, blank=True, related_name="+")
    folders = models.ManyToManyField(Folder, blank=True, related_name="+")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["enterprise", "asset_type"], name="auto_share_rule_one_per_type"),
            models.CheckConstraint(condition=~Q(scope_type="none"), name="auto_share_rule_has_scope"),
        ]


class Grant(models.Model):
    """An account may use an asset for usage whose hour lies in [effective_from, effective_to) (R-SH-6)."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="grants")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="asset_grants")
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-effective_from", "-id"]
        indexes = [models.Index(fields=["account", "effective_from"])]
        constraints = [
            models.UniqueConstraint(fields=["asset", "account"], condition=Q(effective_to__isnull=True),
                                    name="grant_one_open_per_asset_account"),
            models.CheckConstraint(condition=Q(effective_to__isnull=True) | Q(effective_to__gte=F("effective_from")),
                                   name="grant_ends_after_it_starts"),
        ]

    @property
    def is_open(self) -> bool:
        return self.effective_to is None


class UncoveredAccount(models.Model):
    """An account of a folder scope that did not receive the asset because it was full (R-SH-4)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="uncovered")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset", "account"], name="uncovered_once")]


class UsageImport(models.Model):
    """One imported usage file (R-US-1)."""

    file_name = models.CharField(max_length=200)
    enterprise = models.ForeignKey(Enterprise, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    rows = models.PositiveIntegerField(default=0)
    new_records = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]


class UsageRecord(models.Model):
    """One hour of one product's usage by one account (R-US-1). ``amount`` = quantity x unit price."""

    record_id = models.CharField("record ID", max_length=64, unique=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage_records")
    product_code = models.CharField(max_length=64)
    region = models.CharField(max_length=32)
    instance_type = models.CharField(max_length=64, blank=True)
    quantity = models.DecimalField(**QUANTITY)
    unit_price = models.DecimalField(**QUANTITY)
    amount = models.DecimalField(**MONEY)
    usage_hour = models.DateTimeField()
    billed_at = models.DateTimeField()
    usage_import = models.ForeignKey(UsageImport, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="records")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "-usage_hour"])]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="usage_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="usage_unit_price_not_negative"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="usage_amount_not_negative"),
            models.CheckConstraint(condition=Q(billed_at__gte=F("usage_hour")), name="usage_billed_after_use"),
        ]

    def __str__(self):
        return self.record_id


class UsagePending(models.Model):
    """A usage record not rated yet: the rating queue (R-US-7). Inserted with the record by the trigger of
    migration ``0002`` (on PostgreSQL and SQLite), deleted by the rating transaction that rates the record."""

    usage_record = models.OneToOneField(UsageRecord, primary_key=True, on_delete=models.CASCADE,
                                        related_name="pending")

    class Meta:
        ordering = ["usage_record"]


class Deduction(models.Model):
    """What paid for (part of) a usage record: an asset, or the account's balance through a charge."""

    class Source(models.TextChoices):
        RESERVED_INSTANCE = "reserved_instance", "Reserved instance"
        SCU_PACKAGE = "scu_package", "SCU package"
        SAVINGS_PLAN = "savings_plan", "Savings plan"
        COUPON = "coupon", "Coupon"
        BALANCE = "balance", "Account balance"

    # No index of its own: the unique (usage_record, position) index serves lookups by record (one index less to
    # write per deduction line, see bench/RESULTS.md section 4). On PostgreSQL the usage record, the asset and the
    # charge are not foreign keys in the database: triggers check them once per statement (the charge at the
    # COMMIT), and usage records, assets and charges are never deleted nor renumbered (migrations 0004, 0005).
    # SQLite keeps the three foreign keys. The triggers name tables and columns as text: renaming one of them,
    # or changing the type of a primary key they name (Django then re-creates foreign keys), needs a migration
    # that re-creates the triggers and drops those keys.
    usage_record = models.ForeignKey(UsageRecord, on_delete=models.PROTECT, related_name="deductions", db_index=False)
    position = models.PositiveSmallIntegerField()
    source = models.CharField(max_length=20, choices=Source.choices)
    asset = models.ForeignKey(Asset, null=True, blank=True, on_delete=models.PROTECT, related_name="deductions")
    # Usage units covered (instance-hours, GB...), and the pay-as-you-go money covered.
    covered_quantity = models.DecimalField(**QUANTITY, default=ZERO)
    amount = models.DecimalField(**MONEY)
    # Money taken from the asset: commitment used (savings plan) or value used (coupon); 0 otherwise.
    asset_value_used = models.DecimalField(**MONEY, default=ZERO)
    charge = models.ForeignKey("accounts.Charge", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["usage_record_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["usage_record", "position"], name="deduction_position_unique"),
            models.CheckConstraint(condition=Q(amount__gte=0) & Q(asset_value_used__gte=0) & Q(covered_quantity__gte=0),
                                   name="deduction_amounts_not_negative"),
            models.CheckConstraint(
                condition=(Q(source="balance", asset__isnull=True) | (~Q(source="balance") & Q(asset__isnull=False))),
                name="deduction_asset_iff_not_balance"),
        ]


class AssetHourUsage(models.Model):
    """How much of an asset all its accounts used together in one usage hour (R-US-3 to R-US-5).

    ``used`` is instance-hours (reserved instance), GB (SCU package) or commitment money (savings plan).
    """

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="hour_usage")
    usage_hour = models.DateTimeField()
    used = models.DecimalField(**QUANTITY)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["asset", "usage_hour"], name="asset_hour_usage_unique"),
            models.CheckConstraint(condition=Q(used__gte=0), name="asset_hour_usage_not_negative"),
        ]
