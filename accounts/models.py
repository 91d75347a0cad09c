"""The account domain: enterprises, the resource directory, accounts and their money (SPEC 1 to 5).

Models hold fields and constraints only; rules live in ``accounts.services`` and ``accounts.selectors``.
"""

from decimal import Decimal

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Abs, Round
from django.db.models.lookups import LessThan

MONEY = {"max_digits": 20, "decimal_places": 2}
ZERO = Decimal("0.00")


def parts_sum_to(total: str, *parts: str):
    """A CHECK condition: ``total`` equals the sum of ``parts`` (R-MON-1: the parts of a split sum to the whole).

    Written as |total - parts| < half a cent because SQLite evaluates a CHECK on decimal columns in
    floating point, where 0.10 + 0.20 != 0.30; on PostgreSQL's exact numeric, with two decimal
    places, it is the same as equality.
    """
    difference = F(total)
    for part in parts:
        difference = difference - F(part)
    return LessThan(Abs(difference), Value(Decimal("0.005")))


def money_field(**kwargs):
    kwargs.setdefault("default", ZERO)
    return models.DecimalField(**MONEY, **kwargs)


class Enterprise(models.Model):
    """A company that passed real-name verification (R-ORG-1)."""

    name = models.CharField(max_length=120)
    company_id = models.CharField("verified company identifier", max_length=40, unique=True)
    eac_enabled = models.BooleanField("Enterprise Account Center enabled", default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(company_id=""), name="enterprise_company_id_not_empty")]

    def __str__(self):
        return self.name


class Folder(models.Model):
    """A folder (organizational unit) of the resource directory (R-ORG-3).

    ``path`` is the materialized path of ids (``/1/5/9/``) so a subtree is one ``startswith``.
    """

    MAX_DEPTH = 5

    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="folders")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    name = models.CharField(max_length=24)
    depth = models.PositiveSmallIntegerField(default=0)
    path = models.CharField(max_length=255, blank=True, db_index=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="folder_name_unique_among_siblings"),
            models.UniqueConstraint(fields=["enterprise"], condition=Q(parent__isnull=True),
                                    name="folder_one_root_per_enterprise"),
            models.CheckConstraint(condition=Q(depth__gte=0, depth__lte=5), name="folder_depth_at_most_5"),
            models.CheckConstraint(condition=~Q(name=""), name="folder_name_not_empty"),
            models.CheckConstraint(condition=Q(parent__isnull=True, depth=0) | Q(parent__isnull=False, depth__gte=1),
                                   name="folder_root_has_depth_0"),
        ]

    def __str__(self):
        return self.name


def available_credit_expression():
    """Available credit (R-MON-3) in SQL: own cash + transfer book balance + credit limit - outstanding, rounded
    to the cent (SQLite adds decimals in floating point; on PostgreSQL's exact numeric rounding changes nothing).

    The account table sorts and filters by this expression, and ``account_available_credit_idx`` is on it.
    """
    return Round(F("own_cash") + F("transfer_book_balance") + F("credit_limit") - F("outstanding_balance"), 2,
                 output_field=models.DecimalField(max_digits=20, decimal_places=2))


class Account(models.Model):
    """A cloud account, with its stored balances (R-MON-2) and alert settings (R-AL-1).

    Balances change only through ``accounts.services``, each change with its ledger rows (R-MON-4).
    """

    account_id = models.CharField("account ID", max_length=16, unique=True)
    name = models.CharField(max_length=100)
    # No single-column indexes on these two: the (enterprise, folder), (enterprise, name) and available credit
    # indexes below start with the enterprise, and every index of this table costs each balance update (the
    # available credit index makes them non-HOT): bench/RESULTS.md, section 2.
    enterprise = models.ForeignKey(Enterprise, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="accounts", db_index=False)
    folder = models.ForeignKey(Folder, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts",
                               db_index=False)
    is_management = models.BooleanField("management account", default=False)
    verified_company_id = models.CharField("verified company identifier", max_length=40, blank=True)
    contact_phone = models.CharField(max_length=32, blank=True)
    contact_email = models.EmailField(blank=True)
    pay_on_behalf = models.BooleanField("pay on behalf (ecosystem partner)", default=False)
    risk_flag = models.BooleanField("significant receivables with long-overdue history", default=False)

    own_cash = money_field()
    transfer_book_balance = money_field()
    credit_limit = money_field()
    outstanding_balance = money_field()

    alert_enabled = models.BooleanField("low balance alert", default=False)
    alert_threshold = money_field(verbose_name="alert threshold")
    # Set when an alert went out in the current below-threshold episode; cleared at or above it (R-AL-3).
    alert_sent_at = models.DateTimeField(null=True, blank=True)
    alert_reminders_sent = models.PositiveSmallIntegerField(default=0)
    alert_last_reminder_on = models.DateField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id"]
        constraints = [
            models.UniqueConstraint(fields=["enterprise"], condition=Q(is_management=True),
                                    name="account_one_management_account_per_enterprise"),
            models.CheckConstraint(condition=Q(own_cash__gte=0), name="account_own_cash_not_negative"),
            models.CheckConstraint(condition=Q(transfer_book_balance__gte=0),
                                   name="account_transfer_book_balance_not_negative"),
            models.CheckConstraint(condition=Q(credit_limit__gte=0), name="account_credit_limit_not_negative"),
            models.CheckConstraint(condition=Q(outstanding_balance__gte=0),
                                   name="account_outstanding_balance_not_negative"),
            models.CheckConstraint(condition=Q(alert_threshold__gte=0), name="account_alert_threshold_not_negative"),
            models.CheckConstraint(condition=Q(enterprise__isnull=False) | Q(folder__isnull=True),
                                   name="account_folder_needs_enterprise"),
            models.CheckConstraint(condition=Q(is_management=False) | Q(enterprise__isnull=False),
                                   name="account_management_needs_enterprise"),
        ]
        indexes = [
            models.Index(fields=["enterprise", "folder"]), models.Index(fields=["enterprise", "name"]),
            # The account table sorted by available credit reads its page from here instead of computing and
            # sorting the figure of every account of the enterprise (bench/RESULTS.md section 1). The price: a
            # balance update writes every index of the table (no HOT update): bench/bench_account_index.py.
            models.Index(F("enterprise"), available_credit_expression(), F("id"), name="account_available_credit_idx"),
        ]

    def __str__(self):
        return f"{self.name} ({self.account_id})"

    # Figures derived from stored balances only (R-MON-3); no query.
    @property
    def cash_balance(self) -> Decimal:
        return self.own_cash + self.transfer_book_balance

    @property
    def available_credit(self) -> Decimal:
        return self.own_cash + self.transfer_book_balance + self.credit_limit - self.outstanding_balance

    @property
    def credit_transfer_disabled(self) -> bool:
        return self.pay_on_behalf or self.risk_flag

    @property
    def same_company_as_enterprise(self) -> bool:
        return bool(self.enterprise_id and self.verified_company_id
                    and self.verified_company_id == self.enterprise.company_id)


class User(AbstractUser):
    """A console user. ``account`` is the account it acts for; staff with no account are account managers."""

    class Role(models.TextChoices):
        ENTERPRISE_ADMIN = "admin", "Enterprise administrator"
        MEMBER = "member", "Member user"

    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="users")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)

    @property
    def is_account_manager(self) -> bool:
        return self.is_staff

    @property
    def is_enterprise_admin(self) -> bool:
        """A user acting for the management account of an enterprise (R-ORG-6)."""
        account = self.account
        return bool(self.role == self.Role.ENTERPRISE_ADMIN and account is not None and account.is_management
                    and account.enterprise_id is not None)

    @property
    def enterprise_id(self):
        return self.account.enterprise_id if self.account_id else None


class Invitation(models.Model):
    """The management account invites an account into its directory (R-ORG-4)."""

    class Status(models.TextChoices):
        INVITED = "invited", "Invited"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    enterprise = models.ForeignKey(Enterprise, on_delete=models.CASCADE, related_name="invitations")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    folder = models.ForeignKey(Folder, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.INVITED)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["enterprise", "account"], condition=Q(status="invited"),
                                    name="invitation_one_open_per_account"),
        ]

    def __str__(self):
        return f"Invitation #{self.pk} ({self.status})"

class Operation(models.Model):
    """One money operation: the journal entry its ledger rows belong to (R-MON-4).

    ``external_amount`` is the money that entered (+) or left (-) the enterprise's books: a top-up's
    amount, minus a charge's amount, 0 for a transfer, a withdrawal or a credit limit change. The books
    balance when, per operation, the change of (own cash + transfer book balance - outstanding) equals it.
    """

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        CHARGE = "charge", "Charge"
        TRANSFER = "transfer", "Transfer"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        CREDIT_LIMIT = "credit_limit", "Credit limit change"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    external_amount = money_field()
    # Who did it: history, never looked up by actor, so no index and no database constraint (whose check at
    # commit would lock the one user row every concurrent operation of an administrator shares). Django still
    # protects the user from deletion.
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False,
                              db_constraint=False)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}"


class LedgerEntry(models.Model):
    """One signed change of one balance bucket of one account. Append-only (R-MON-4)."""

    class Bucket(models.TextChoices):
        OWN_CASH = "own_cash", "Own cash"
        TRANSFER_BOOK = "transfer_book", "Transfer book balance"
        CREDIT_LIMIT = "credit_limit", "Credit limit"
        OUTSTANDING = "outstanding", "Outstanding balance"

    BUCKET_FIELDS = {
        "own_cash": "own_cash",
        "transfer_book": "transfer_book_balance",
        "credit_limit": "credit_limit",
        "outstanding": "outstanding_balance",
    }

    @classmethod
    def apply_to(cls, account: "Account", bucket: str, delta) -> str:
        """Add ``delta`` to the in-memory ``account``'s balance of ``bucket``; return that balance's field name.

        The one mapping from a posting to the stored balance it changes, for every write path (ORM and SQL).
        """
        field = cls.BUCKET_FIELDS[bucket]
        setattr(account, field, getattr(account, field) + delta)
        return field

    operation = models.ForeignKey(Operation, on_delete=models.PROTECT, related_name="entries")
    # No index of its own: the (account, bucket) index below serves lookups by account (one index less to
    # write per ledger row, see bench/RESULTS.md).
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False)
    bucket = models.CharField(max_length=16, choices=Bucket.choices)
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "bucket"])]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_amount_not_zero"),
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Ledger entries are append-only")


class Bill(models.Model):
    """A charge not covered by balances becomes an unpaid bill with a due date (R-MON-5)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="bills")
    operation = models.ForeignKey(Operation, on_delete=models.PROTECT, related_name="bills")
    amount = models.DecimalField(**MONEY)
    unpaid_amount = models.DecimalField(**MONEY)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    due_date = models.DateField(db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["account", "due_date"], condition=Q(unpaid_amount__gt=0),
                                name="bill_unpaid_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="bill_amount_positive"),
            models.CheckConstraint(condition=Q(unpaid_amount__gte=0) & Q(unpaid_amount__lte=F("amount")),
                                   name="bill_unpaid_between_0_and_amount"),
        ]

    def __str__(self):
        return f"Bill #{self.pk} of {self.amount} due {self.due_date}"

class Charge(models.Model):
    """A charge (spending) and how it was paid (R-MON-5): transfer book first, then own cash, then a bill."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="charges")
    operation = models.OneToOneField(Operation, on_delete=models.PROTECT, related_name="charge")
    amount = models.DecimalField(**MONEY)
    from_transfer_book = money_field()
    from_own_cash = money_field()
    billed = money_field()
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="charge_amount_positive"),
            models.CheckConstraint(
                condition=parts_sum_to("amount", "from_transfer_book", "from_own_cash", "billed"),
                name="charge_parts_sum_to_amount"),
        ]

    def __str__(self):
        return f"Charge #{self.pk} of {self.amount}"

class TopUp(models.Model):
    """Money paid into an account: first pays unpaid bills, oldest first, then own cash (R-MON-6)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="top_ups")
    operation = models.OneToOneField(Operation, on_delete=models.PROTECT, related_name="top_up")
    amount = models.DecimalField(**MONEY)
    paid_bills = money_field()
    to_own_cash = money_field()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="top_up_amount_positive"),
            models.CheckConstraint(condition=parts_sum_to("amount", "paid_bills", "to_own_cash"),
                                   name="top_up_parts_sum_to_amount"),
        ]

    def __str__(self):
        return f"Top-up #{self.pk} of {self.amount}"

class TransferRecord(models.Model):
    """A transfer (A -> B) or a withdrawal (B -> A) (R-TR-3, R-TR-5, R-TR-6).

    ``payer`` is the account money leaves, ``payee`` the account it arrives in. For a withdrawal the
    payer is the account that had received the transfer (B) and the payee the original source (A).
    """

    class Kind(models.TextChoices):
        TRANSFER = "transfer", "Transfer"
        WITHDRAWAL = "withdrawal", "Withdraw"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Lookups by payer or payee use the (payer, -created_at) and (payee, -created_at) indexes below.
    payer = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transfers_out", db_index=False)
    payee = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transfers_in", db_index=False)
    amount = models.DecimalField(**MONEY)
    remark = models.CharField(max_length=200)
    actor = models.ForeignKey(User, null=True, on_delete=models.PROTECT, related_name="+", db_index=False,
                              db_constraint=False)  # history: see Operation.actor
    operation = models.OneToOneField(Operation, on_delete=models.PROTECT, related_name="transfer_record")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["payer", "-created_at"]), models.Index(fields=["payee", "-created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(condition=~Q(payer=F("payee")), name="transfer_between_different_accounts"),
            models.CheckConstraint(condition=~Q(remark=""), name="transfer_remark_not_empty"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} of {self.amount}"

class TransferPair(models.Model):
    """The remaining revocable amount of transfers from ``source`` (A) to ``target`` (B) (R-TR-3, R-TR-4)."""

    # Lookups by source use the unique (source, target) index.
    source = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="pairs_as_source", db_index=False)
    target = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="pairs_as_target")
    remaining_revocable = money_field()
    total_transferred = money_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "target"], name="transfer_pair_unique"),
            models.CheckConstraint(condition=Q(remaining_revocable__gte=0), name="transfer_pair_remaining_not_negative"),
            models.CheckConstraint(condition=~Q(source=F("target")), name="transfer_pair_different_accounts"),
        ]


class CreditContract(models.Model):
    """The enterprise's credit control contract (R-CR-1, R-CR-2)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        EFFECTIVE = "effective", "Effective"

    enterprise = models.OneToOneField(Enterprise, on_delete=models.PROTECT, related_name="credit_contract")
    contract_number = models.CharField(max_length=32, unique=True)
    total_credit_limit = models.DecimalField(**MONEY)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(User, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    confirmed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(total_credit_limit__gte=0), name="contract_total_not_negative"),
            models.CheckConstraint(
                condition=Q(status="pending", confirmed_at__isnull=True)
                | Q(status="effective", confirmed_at__isnull=False),
                name="contract_effective_iff_confirmed"),
        ]

    def __str__(self):
        return self.contract_number


class CreditChangeRecord(models.Model):
    """A change of an account's credit limit, or of the enterprise total (account empty) (R-CR-7)."""

    enterprise = models.ForeignKey(Enterprise, on_delete=models.PROTECT, related_name="credit_changes")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="credit_changes")
    old_value = models.DecimalField(**MONEY)
    new_value = models.DecimalField(**MONEY)
    reason = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(User, null=True, on_delete=models.PROTECT, related_name="+", db_index=False,
                              db_constraint=False)  # history: see Operation.actor
    operation = models.ForeignKey(Operation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(old_value__gte=0) & Q(new_value__gte=0),
                                   name="credit_change_values_not_negative"),
        ]


class AlertEvent(models.Model):
    """An alert or reminder that went out (R-AL-3, R-AL-5): the account's alert history."""

    class Kind(models.TextChoices):
        ALERT = "alert", "Low balance alert"
        REMINDER = "reminder", "Daily reminder"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alert_events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    available_credit = models.DecimalField(**MONEY)
    threshold = models.DecimalField(**MONEY)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
