from django import template

from core.money import format_money

register = template.Library()


@register.filter
def money(value):
    """``1250.5`` -> ``1,250.50``: thousands separators, two decimals (R-MON-1)."""
    return format_money(value)
