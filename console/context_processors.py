from django.conf import settings


def console(request):
    """What the console frame shows on every page: currency, role, unread messages."""
    user = getattr(request, "user", None)
    unread = 0
    if user is not None and user.is_authenticated and user.account_id:
        from core.models import Message

        unread = Message.objects.filter(account_id=user.account_id, read_at__isnull=True).count()
    return {"currency": settings.EAC_CURRENCY, "unread_messages": unread}
