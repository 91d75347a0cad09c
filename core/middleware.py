from .context import request_context


class RequestContextMiddleware:
    """Remember who acts and from which address, for the audit events the services write (R-AU-1)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ip = request.META.get("REMOTE_ADDR")
        with request_context(ip=ip):
            return self.get_response(request)
