import re

from django.http import HttpResponseBadRequest

from .context import request_context

# C0 control characters other than tab, line feed and carriage return, and DEL. No field of the product takes
# them, PostgreSQL refuses NUL in text outright (a 500 if it got that far), and they break the .xlsx export.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MSG_CONTROL_CHARACTERS = "The request contains control characters (such as a null byte) that no field accepts."


class RequestContextMiddleware:
    """Remember who acts and from which address, for the audit events the services write (R-AU-1)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ip = request.META.get("REMOTE_ADDR")
        with request_context(ip=ip):
            return self.get_response(request)


class RejectControlCharactersMiddleware:
    """Refuse (400) a query string or form whose names or values hold control characters, before any view
    reads them: bad input gets a 4xx, never a database error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._has_control(request.GET) or (request.method == "POST" and self._has_control(request.POST)):
            return HttpResponseBadRequest(MSG_CONTROL_CHARACTERS, content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    @staticmethod
    def _has_control(query) -> bool:
        return any(_CONTROL.search(key) or any(_CONTROL.search(v) for v in values) for key, values in query.lists())
