import json

from django.utils import timezone

from .context import current_ip
from .models import AuditEvent


def audit_event(*, actor, action: str, obj=None, object_type: str = "", object_id="", enterprise=None,
                before=None, after=None, at=None) -> AuditEvent:
    """Write one audit event in the caller's transaction (R-AU-1)."""
    if obj is not None:
        object_type = object_type or obj._meta.label
        object_id = object_id or obj.pk
    return AuditEvent.objects.create(
        enterprise=enterprise,
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        object_repr=str(obj)[:200] if obj is not None else "",
        before=_jsonable(before),
        after=_jsonable(after),
        ip_address=current_ip(),
        created_at=at or timezone.now(),
    )


def audit_json(value) -> str | None:
    """``before``/``after`` as the JSON text ``audit_event`` would store, for services that insert in SQL."""
    # ``default=str`` is what ``_jsonable`` does to a value JSON has no type for (Decimal, datetime), in
    # the C encoder: the same text, faster (it is on every transfer).
    return None if value is None else json.dumps(value, default=str)


def _jsonable(value):
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, bool, float)):
        return value
    return str(value)
