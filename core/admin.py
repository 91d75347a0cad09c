from django.contrib import admin

from .models import AuditEvent, IdempotencyKey, Message, Notification


@admin.register(AuditEvent, Notification, Message, IdempotencyKey)
class ReadOnlyCoreAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
