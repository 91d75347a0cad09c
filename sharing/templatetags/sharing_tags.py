from django import template

from sharing import selectors

register = template.Library()


@register.simple_tag
def account_assets(account, limit=50):
    """What the account details page shows of sharing (R-UAM-5): received and owned assets, and per usage
    record what paid for it. Three queries plus two prefetches, whatever the number of rows."""
    return {
        "received": list(selectors.received_assets(account)),
        "owned": list(selectors.owned_assets(account)),
        "usage": list(selectors.usage_deductions(account, limit=limit)),
    }
