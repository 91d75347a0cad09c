"""The drawers opened from a table row (issue 3, part B)."""

from django.http import Http404


def credit_drawer(request, pk):
    raise Http404("not built yet")


def transfer_drawer(request, pk):
    raise Http404("not built yet")


def transfer_records_drawer(request, pk):
    raise Http404("not built yet")


def alert_drawer(request, pk):
    raise Http404("not built yet")


def alert_batch_drawer(request):
    raise Http404("not built yet")
