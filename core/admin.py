from django.contrib import admin

from .models import AuditEvent, IdempotencyKey, LoginFailure, Message, Notification


@admin.register(AuditEvent, Notification, Message, IdempotencyKey)
class ReadOnlyCoreAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin):
    """Failed sign-ins of the rate limit; deleting a user name's rows unlocks its sign-in at once."""

    list_display = ("username", "ip_address", "created_at")
    search_fields = ("username", "ip_address")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
