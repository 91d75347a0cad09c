from django.conf import settings
from django.db import models
from django.db.models import Q


class AuditEvent(models.Model):
    """Every change made through the console or the back office (R-AU-1). Append-only."""

    # Lookups by enterprise use the (enterprise, -created_at) index below.
    enterprise = models.ForeignKey(
        "accounts.Enterprise", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events",
        db_index=False, db_constraint=False,
    )
    # History: no database constraint on these two (its check at commit would lock the one enterprise row and
    # user row that every concurrent audited operation shares; Django still protects them from deletion), and
    # the actor is never looked up, so no index.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              db_index=False, db_constraint=False)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["enterprise", "-created_at"])]

    def __str__(self):
        return f"{self.action} {self.object_type} {self.object_id}"


class Notification(models.Model):
    """The outbox (R-NT-1): written in the transaction that causes it, delivered by a task afterwards."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        EMAIL = "email", "Email"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    account = models.ForeignKey("accounts.Account", null=True, blank=True, on_delete=models.PROTECT)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    kind = models.CharField(max_length=40, db_index=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=~Q(recipient=""), name="notification_recipient_not_empty"),
        ]

    def __str__(self):
        return f"{self.channel} to {self.recipient}: {self.subject}"


class Message(models.Model):
    """An in-console message of one account (the third channel of R-AL-3, R-NT-1)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "read_at"])]

    def __str__(self):
        return self.title


IDEMPOTENCY_KEY_CONSTRAINT = "idempotency_key_unique"  # what a second request with a used key runs into


class IdempotencyKey(models.Model):
    """A request's idempotency key and the first result it produced (R-TR-7). Kept 48 hours."""

    key = models.CharField(max_length=80)
    operation = models.CharField(max_length=40)
    request_fingerprint = models.CharField(max_length=64)
    result_type = models.CharField(max_length=64, blank=True)
    result_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        # A constraint rather than ``unique=True``: the same unique index, without the extra
        # ``varchar_pattern_ops`` index PostgreSQL gets for LIKE on a unique CharField (never used here).
        constraints = [models.UniqueConstraint(fields=["key"], name=IDEMPOTENCY_KEY_CONSTRAINT)]

    def __str__(self):
        return self.key


class LoginFailure(models.Model):
    """One failed sign-in, kept for the sign-in rate limit (``core.login_throttle``) and pruned after its window.

    ``username`` is the name typed (case-folded), ``ip_address`` the client's address; either may be empty.
    """

    username = models.CharField(max_length=150, blank=True)
    ip_address = models.CharField(max_length=45, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["username", "created_at"]), models.Index(fields=["ip_address", "created_at"])]

    def __str__(self):
        return f"{self.username or '?'} from {self.ip_address or '?'} at {self.created_at:%Y-%m-%d %H:%M:%S}"
