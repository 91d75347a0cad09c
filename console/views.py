"""The console's landing page: the account overview."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts import selectors
from accounts.models import Account
from sharing import selectors as sharing_selectors

from . import summary
from .views_accounts import get_viewer


@login_required
@require_safe
def overview(request):
    """Account overview: the enterprise in figures for its administrator, its own figures for a member."""
    if request.user.account_id is None:  # an account manager: the back office is their console
        return render(request, "console/overview.html", {"viewer": None})
    viewer = get_viewer(request)
    context = {"viewer": viewer}
    if viewer.is_admin:
        context.update(
            figures=summary.enterprise_figures(viewer.enterprise),
            credit=selectors.credit_summary(viewer.enterprise),
            contract=selectors.credit_contract(viewer.enterprise),
        )
    else:
        account = (sharing_selectors.annotate_coupons(selectors.with_figures(Account.objects.filter(pk=viewer.account.pk)))
                   .select_related("folder").get())
        context.update(
            account=account,
            figures=summary.account_figures(account),
            transferable_amount=selectors.transferable_amount(account),
        )
    return render(request, "console/overview.html", context)
