"""The unified account management table, its export, and the account details page (issue 3, part A)."""

from django.http import Http404


def account_list(request):
    raise Http404("not built yet")


def account_export(request):
    raise Http404("not built yet")


def account_detail(request, pk):
    raise Http404("not built yet")
