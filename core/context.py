import contextlib
import contextvars

_ip: contextvars.ContextVar[str | None] = contextvars.ContextVar("eac_request_ip", default=None)


def current_ip() -> str | None:
    return _ip.get()


@contextlib.contextmanager
def request_context(*, ip: str | None):
    token = _ip.set(ip)
    try:
        yield
    finally:
        _ip.reset(token)
