"""Reads of equity asset sharing. The account table asks this module for the coupon count (R-MON-3)."""

from django.db.models import IntegerField, Value


def annotate_coupons(queryset, *, at=None):
    """Annotate ``coupons``: the number of valid coupons each account can use (R-MON-3).

    PLACEHOLDER until the sharing issue lands its coupon model: every account has 0 coupons.
    """
    return queryset.annotate(coupons=Value(0, output_field=IntegerField()))
