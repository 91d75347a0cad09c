"""The back office (R-ORG-6): account managers grant credit, set risk flags, verify companies, and record
top-ups and charges. Balances and the ledger are read-only here: every change goes through the services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from core.audit import audit_event
from core.errors import DomainError

from . import services
from .models import (
    Account,
    AlertEvent,
    Bill,
    Charge,
    CreditChangeRecord,
    CreditContract,
    Enterprise,
    Folder,
    Invitation,
    LedgerEntry,
    Operation,
    TopUp,
    TransferPair,
    TransferRecord,
    User,
)

BALANCE_FIELDS = ("own_cash", "transfer_book_balance", "credit_limit", "outstanding_balance")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedAdminMixin:
    """Changes saved by the admin's own forms are audit events too (R-AU-1): field, before, after."""

    audit_action = "backoffice_change"
    audit_skip = {"password", "last_login"}

    def save_model(self, request, obj, form, change):
        fields = [f for f in form.changed_data if f not in self.audit_skip and not self._is_m2m(f)]
        before = {}
        if change and fields:
            original = type(obj).objects.get(pk=obj.pk)
            before = {f: getattr(original, f) for f in fields}
        super().save_model(request, obj, form, change)
        if fields or not change:
            audit_event(actor=request.user, action=self.audit_action if change else "backoffice_create", obj=obj,
                        enterprise=self._audit_enterprise(obj), before=before or None,
                        after={f: getattr(obj, f) for f in fields})

    def _is_m2m(self, name):
        try:
            return self.model._meta.get_field(name).many_to_many
        except Exception:  # a form-only field
            return True

    def _audit_enterprise(self, obj):
        return None


class AmountForm(forms.Form):
    amount = forms.CharField(max_length=40, help_text="Positive, at most 2 decimals.")
    description = forms.CharField(max_length=200, required=False)


class CreditGrantForm(forms.Form):
    total_credit_limit = forms.CharField(max_length=40)
    reason = forms.CharField(max_length=200, required=False)


@admin.register(Enterprise)
class EnterpriseAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "company_id", "eac_enabled", "created_at")
    search_fields = ("name", "company_id")
    readonly_fields = ("company_id", "eac_enabled", "created_at", "credit_control")

    def has_add_permission(self, request):
        return False  # an enterprise is created when its management account enables the center

    def has_delete_permission(self, request, obj=None):
        return False  # accounts, ledger and records refer to it

    def _audit_enterprise(self, obj):
        return obj

    @admin.display(description="Credit control contract")
    def credit_control(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        contract = CreditContract.objects.filter(enterprise=obj).first()
        state = (f"{contract.contract_number}: {contract.total_credit_limit} ({contract.get_status_display()})"
                 if contract else "none")
        return format_html('{} &middot; <a href="{}">Grant or change the total credit limit</a>', state,
                           reverse("admin:accounts_enterprise_grant_credit", args=[obj.pk]))

    def get_urls(self):
        return [path("<int:pk>/grant-credit/", self.admin_site.admin_view(self.grant_credit_view),
                     name="accounts_enterprise_grant_credit")] + super().get_urls()

    def grant_credit_view(self, request, pk):
        if not self.has_change_permission(request):
            raise PermissionDenied
        enterprise = get_object_or_404(Enterprise, pk=pk)
        form = CreditGrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.credit_contract_grant(actor=request.user, enterprise=enterprise,
                                               total_credit_limit=form.cleaned_data["total_credit_limit"],
                                               reason=form.cleaned_data["reason"])
            except DomainError as exc:
                form.add_error("total_credit_limit", exc.message)
            else:
                messages.success(request, "Credit control contract saved.")
                return redirect(reverse("admin:accounts_enterprise_change", args=[pk]))
        return render(request, "admin/accounts/form.html", {
            **self.admin_site.each_context(request), "title": f"Grant or change credit: {enterprise}", "form": form,
            "opts": self.model._meta, "original": enterprise})


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """Balances are read-only here. A change of name or contacts goes through ``services.account_details_set``,
    of flags and verification through ``services.account_flags_set`` (both audited); the model is never saved
    whole, so a balance changed by a concurrent operation is never overwritten with the value read earlier."""

    list_display = ("account_id", "name", "enterprise", "is_management", *BALANCE_FIELDS, "pay_on_behalf",
                    "risk_flag")
    list_filter = ("is_management", "pay_on_behalf", "risk_flag")
    search_fields = ("account_id", "name")
    list_select_related = ("enterprise",)
    readonly_fields = ("enterprise", "folder", "is_management", *BALANCE_FIELDS, "alert_sent_at",
                       "alert_reminders_sent", "alert_last_reminder_on", "created_at", "back_office_actions")
    fields = ("account_id", "name", "enterprise", "folder", "is_management", "verified_company_id", "contact_phone",
              "contact_email", "pay_on_behalf", "risk_flag", *BALANCE_FIELDS, "back_office_actions", "alert_enabled",
              "alert_threshold", "alert_sent_at", "alert_reminders_sent", "alert_last_reminder_on", "created_at")
    FLAG_FIELDS = ("pay_on_behalf", "risk_flag", "verified_company_id")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["account_id", "alert_enabled", "alert_threshold"]
        return fields

    def has_delete_permission(self, request, obj=None):
        return False  # an account has a ledger; it is removed from a directory, never deleted

    @admin.display(description="Record")
    def back_office_actions(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return format_html('<a href="{}">Record a top-up</a> &middot; <a href="{}">Record a charge</a>',
                           reverse("admin:accounts_account_top_up", args=[obj.pk]),
                           reverse("admin:accounts_account_charge", args=[obj.pk]))

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)  # a new account: every balance is 0.00
            audit_event(actor=request.user, action="account_create", obj=obj, enterprise=obj.enterprise,
                        after={f: getattr(obj, f) for f in form.changed_data})
            return
        details = {f: getattr(obj, f) for f in form.changed_data if f in services.ACCOUNT_DETAIL_FIELDS}
        flags = {f: getattr(obj, f) for f in form.changed_data if f in self.FLAG_FIELDS}
        if details:
            services.account_details_set(actor=request.user, account=obj, **details)
        if flags:
            services.account_flags_set(actor=request.user, account=obj, **flags)
        obj.refresh_from_db()

    def get_urls(self):
        return [
            path("<int:pk>/top-up/", self.admin_site.admin_view(self.money_view), {"kind": "top_up"},
                 name="accounts_account_top_up"),
            path("<int:pk>/charge/", self.admin_site.admin_view(self.money_view), {"kind": "charge"},
                 name="accounts_account_charge"),
        ] + super().get_urls()

    def money_view(self, request, pk, kind):
        if not self.has_change_permission(request):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=pk)
        form = AmountForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            service = services.top_up if kind == "top_up" else services.charge
            try:
                service(actor=request.user, account=account, amount=form.cleaned_data["amount"],
                        description=form.cleaned_data["description"])
            except DomainError as exc:
                form.add_error("amount", exc.message)
            else:
                messages.success(request, "Top-up recorded." if kind == "top_up" else "Charge recorded.")
                return redirect(reverse("admin:accounts_account_change", args=[pk]))
        title = ("Record a top-up for " if kind == "top_up" else "Record a charge for ") + str(account)
        return render(request, "admin/accounts/form.html", {
            **self.admin_site.each_context(request), "title": title, "form": form, "opts": self.model._meta,
            "original": account})


@admin.register(User)
class UserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    list_display = ("username", "account", "role", "is_staff", "is_active")
    fieldsets = DjangoUserAdmin.fieldsets + (("Console", {"fields": ("account", "role")}),)
    raw_id_fields = ("account",)


@admin.register(Folder)
class FolderAdmin(ReadOnlyAdmin):
    list_display = ("name", "enterprise", "depth", "path")


@admin.register(CreditContract)
class CreditContractAdmin(ReadOnlyAdmin):
    list_display = ("contract_number", "enterprise", "total_credit_limit", "status", "confirmed_at")


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "external_amount", "actor", "created_at")
    list_filter = ("kind",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "operation", "account", "bucket", "amount", "created_at")
    list_filter = ("bucket",)
    list_select_related = ("operation", "account")


for model, columns in [
    (Bill, ("id", "account", "amount", "unpaid_amount", "due_date")),
    (Charge, ("id", "account", "amount", "from_transfer_book", "from_own_cash", "billed", "created_at")),
    (TopUp, ("id", "account", "amount", "paid_bills", "to_own_cash", "created_at")),
    (TransferRecord, ("id", "kind", "payer", "payee", "amount", "remark", "created_at")),
    (TransferPair, ("source", "target", "remaining_revocable", "total_transferred")),
    (CreditChangeRecord, ("enterprise", "account", "old_value", "new_value", "created_at")),
    (AlertEvent, ("account", "kind", "available_credit", "threshold", "created_at")),
    (Invitation, ("enterprise", "account", "status", "created_at", "expires_at")),
]:
    admin.site.register(model, type(f"{model.__name__}Admin", (ReadOnlyAdmin,),
                                    {"list_display": columns, "list_select_related": True}))
