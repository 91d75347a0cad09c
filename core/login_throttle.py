"""The sign-in rate limit: too many failed sign-ins for one user name or from one address lock sign-in for a while.

A failure is stored as a ``LoginFailure`` row (a table, not the cache, so every server process sees the same
count). With ``EAC_LOGIN_MAX_FAILURES`` (5) failures for a user name, or ``EAC_LOGIN_MAX_FAILURES_PER_IP`` (20:
an office behind one address has many people) from an address, within ``EAC_LOGIN_WINDOW_MINUTES`` (15), the
next sign-in is refused, even with the right password, until the oldest of those failures leaves the window.
A refused attempt is not counted (it cannot lengthen the lock), and a successful sign-in clears the user
name's failures. The address is ``REMOTE_ADDR``, as in the audit log: behind a proxy, the proxy must set it.
"""

import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import LoginFailure

MSG_LOCKED = ("Too many failed sign-ins {who}. Sign-in is locked for {minutes} more minute{s}; "
              "try again later or ask your administrator to reset your password.")


def _limits() -> tuple[int, int, timedelta]:
    return (getattr(settings, "EAC_LOGIN_MAX_FAILURES", 5), getattr(settings, "EAC_LOGIN_MAX_FAILURES_PER_IP", 20),
            timedelta(minutes=getattr(settings, "EAC_LOGIN_WINDOW_MINUTES", 15)))


def _key(username) -> str:
    return (username or "").strip().casefold()[:150]


def client_ip(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "")[:45] if request is not None else ""


@dataclass(frozen=True)
class Lock:
    """Why sign-in is refused and until when."""

    by_username: bool
    until: object

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil((self.until - timezone.now()).total_seconds() / 60))
        who = "for this user name" if self.by_username else "from your network address"
        return MSG_LOCKED.format(who=who, minutes=minutes, s="" if minutes == 1 else "s")


def _lock_for(queryset, limit: int, window: timedelta) -> object | None:
    """The moment the lock of ``queryset``'s failures ends, or None when they are fewer than ``limit``."""
    if limit <= 0:
        return None
    times = list(queryset.filter(created_at__gt=timezone.now() - window)
                 .order_by("-created_at").values_list("created_at", flat=True)[:limit])
    if len(times) < limit:
        return None
    return times[-1] + window  # the limit-th most recent failure leaves the window then


def lock(*, username, ip: str) -> Lock | None:
    """The lock on signing in as ``username`` from ``ip``, or None when sign-in may be tried."""
    per_user, per_ip, window = _limits()
    name = _key(username)
    if name:
        until = _lock_for(LoginFailure.objects.filter(username=name), per_user, window)
        if until is not None:
            return Lock(by_username=True, until=until)
    if ip:
        until = _lock_for(LoginFailure.objects.filter(ip_address=ip), per_ip, window)
        if until is not None:
            return Lock(by_username=False, until=until)
    return None


def record_failure(*, username, ip: str) -> None:
    """Count one failed sign-in; failures older than the window are pruned on the way."""
    _, _, window = _limits()
    now = timezone.now()
    LoginFailure.objects.filter(created_at__lte=now - window).delete()
    LoginFailure.objects.create(username=_key(username), ip_address=ip or "", created_at=now)


def record_success(*, username) -> None:
    """A successful sign-in clears the user name's failures (the address's stay: one good account must not
    reset the count of an address that is guessing other users' passwords)."""
    name = _key(username)
    if name:
        LoginFailure.objects.filter(username=name).delete()
