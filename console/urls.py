"""Console URLs. The names are a contract between the screens: the account table links to the drawers by
these names, and the navigation links to the pages."""

from django.urls import path

from . import views, views_accounts, views_drawers, views_pages

app_name = "console"

urlpatterns = [
    path("", views.overview, name="overview"),
    # Unified account management (issue 3: table, export, details)
    path("accounts/", views_accounts.account_list, name="accounts"),
    path("accounts/export.xlsx", views_accounts.account_export, name="accounts_export"),
    path("accounts/<int:pk>/", views_accounts.account_detail, name="account_detail"),
    # Drawers (side panels; each also a full page without HTMX)
    path("accounts/<int:pk>/credit/", views_drawers.credit_drawer, name="credit_drawer"),
    path("accounts/<int:pk>/transfer/", views_drawers.transfer_drawer, name="transfer_drawer"),
    path("accounts/<int:pk>/transfer-records/", views_drawers.transfer_records_drawer, name="transfer_records_drawer"),
    path("accounts/<int:pk>/alert/", views_drawers.alert_drawer, name="alert_drawer"),
    path("accounts/alerts/batch/", views_drawers.alert_batch_drawer, name="alert_batch"),
    # Pages
    path("transfers/", views_pages.transfer_records, name="transfer_records"),
    path("credit/", views_pages.credit_control, name="credit_control"),
    path("contracts/", views_pages.contracts, name="contracts"),
    path("messages/", views_pages.messages_list, name="messages"),
    path("audit/", views_pages.audit_log, name="audit_log"),
]
