"""The comparison point of bench_table.py: Django's admin changelist of the same accounts with the same columns,
written the way the admin is usually written (figures as methods on the ModelAdmin)."""

from django.contrib import admin
from django.db.models import Sum

from accounts.models import Account, Bill
from accounts.selectors import today


class BenchAccountAdmin(admin.ModelAdmin):
    list_display = ("name", "available_credit", "account_id", "folder", "cash_balance", "transfer_book_balance",
                    "credit_limit", "outstanding_balance", "overdue", "alert_enabled", "alert_threshold")
    list_select_related = ("folder",)
    search_fields = ("name", "account_id")

    def get_list_per_page(self, request):
        return int(request.GET.get("per_page", 50))

    def get_changelist_instance(self, request):
        self.list_per_page = self.get_list_per_page(request)
        request.GET = request.GET.copy()
        request.GET.pop("per_page", None)
        return super().get_changelist_instance(request)

    @admin.display(ordering="own_cash")
    def available_credit(self, obj):
        return obj.available_credit

    def cash_balance(self, obj):
        return obj.cash_balance

    def overdue(self, obj):
        return Bill.objects.filter(account=obj, unpaid_amount__gt=0, due_date__lt=today()).aggregate(
            s=Sum("unpaid_amount"))["s"] or 0


class BenchAccount(Account):
    class Meta:
        proxy = True
        app_label = "accounts"


def register_bench_admin(site):
    from django.apps import apps
    from django.urls import clear_url_caches

    site.register(BenchAccount, BenchAccountAdmin)
    clear_url_caches()
    import importlib

    import eac.urls

    importlib.reload(eac.urls)
