"""Pages: transfer records, credit control, contracts, messages, audit log (issue 3, part B)."""

from django.http import Http404


def transfer_records(request):
    raise Http404("not built yet")


def credit_control(request):
    raise Http404("not built yet")


def contracts(request):
    raise Http404("not built yet")


def messages_list(request):
    raise Http404("not built yet")


def audit_log(request):
    raise Http404("not built yet")
