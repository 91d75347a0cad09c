"""Back office: account managers provision and cancel assets (through the services, which apply the automatic
sharing rules, R-SH-3). Grants, usage and deductions are read-only here."""

from django import forms
from django.contrib import admin, messages

from core.errors import DomainError

from . import services
from .models import Asset, Deduction, Grant, UsageRecord

TYPED_FIELDS = ("hourly_commitment", "discount_rate", "instance_type", "region", "instance_count", "capacity_gb",
                "face_value")


class StaffAdmin(admin.ModelAdmin):
    """Account managers (staff) are the back office (R-ORG-6): they see these models without extra permissions."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


class AssetProvisionForm(forms.ModelForm):
    products_text = forms.CharField(label="Products", required=False,
                                    help_text="Product codes separated by commas (eligible, storage or applicable "
                                              "products; empty on a coupon means all).")

    class Meta:
        model = Asset
        fields = ("asset_type", "owner", "name", "valid_from", "valid_to", *TYPED_FIELDS)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            # The admin's add view runs in one transaction: if anything fails later, this is rolled back too.
            self.provisioned = services.asset_provision(
                actor=self.request_user, owner=data["owner"], asset_type=data["asset_type"], name=data.get("name", ""),
                valid_from=data["valid_from"], valid_to=data["valid_to"], products=data.get("products_text", ""),
                **{f: data.get(f) for f in TYPED_FIELDS if data.get(f) not in (None, "")})
        except DomainError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


@admin.register(Asset)
class AssetAdmin(StaffAdmin):
    list_display = ("asset_id", "asset_type", "name", "owner", "valid_from", "valid_to", "status", "scope_type")
    list_filter = ("asset_type", "status", "scope_type")
    search_fields = ("asset_id", "name", "owner__name", "owner__account_id")
    raw_id_fields = ("owner",)
    actions = ["cancel_assets"]

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = AssetProvisionForm
            form = super().get_form(request, obj, **kwargs)
            form.request_user = request.user
            return form
        return super().get_form(request, obj, **kwargs)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        created = form.provisioned
        obj.pk = created.pk
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if not k.startswith("_")})

    def save_related(self, request, form, formsets, change):
        pass

    @admin.action(description="Cancel the selected assets (their grants end now)")
    def cancel_assets(self, request, queryset):
        for asset in queryset:
            services.asset_cancel(actor=request.user, asset=asset)
        messages.success(request, f"Cancelled {queryset.count()} asset(s).")


class ReadOnly(StaffAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Grant)
class GrantAdmin(ReadOnly):
    list_display = ("asset", "account", "effective_from", "effective_to")
    search_fields = ("asset__asset_id", "account__account_id")
    list_select_related = ("asset", "account")


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnly):
    list_display = ("record_id", "account", "product_code", "usage_hour", "amount", "rated")
    search_fields = ("record_id", "account__account_id")
    list_select_related = ("account", "pending")

    @admin.display(boolean=True)
    def rated(self, record):
        """Rated once its rating queue row is gone (``pending`` is joined by ``list_select_related``)."""
        return not hasattr(record, "pending")


@admin.register(Deduction)
class DeductionAdmin(ReadOnly):
    list_display = ("usage_record", "position", "source", "asset", "amount", "asset_value_used")
    list_select_related = ("usage_record", "asset")
