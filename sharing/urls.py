"""Equity asset sharing screens (issue 4). Every URL renders a full page without JavaScript; HTMX requests get
the fragment."""

from django.urls import path

from . import views, views_directory

app_name = "sharing"

urlpatterns = [
    path("", views.asset_list, name="index"),
    path("assets/<str:asset_type>/", views.asset_list, name="assets"),
    path("asset/<int:pk>/share/", views.share_drawer, name="share_drawer"),
    path("asset/<int:pk>/unshare/", views.unshare, name="unshare"),
    path("asset/<int:pk>/history/", views.history_drawer, name="history_drawer"),
    path("rules/", views.rules, name="rules"),
    path("usage/import/", views.usage_import_page, name="usage_import"),
    path("directory/", views_directory.directory, name="directory"),
    path("directory/folders/new/", views_directory.folder_create, name="folder_create"),
    path("directory/folders/<int:pk>/rename/", views_directory.folder_rename, name="folder_rename"),
    path("directory/folders/<int:pk>/delete/", views_directory.folder_delete, name="folder_delete"),
    path("directory/move/", views_directory.accounts_move, name="accounts_move"),
    path("directory/invite/", views_directory.invite, name="invite"),
    path("directory/accounts/<int:pk>/remove/", views_directory.account_remove, name="account_remove"),
]
