"""The one application exception. Views map it to a form error (``field``) or a page message."""


class DomainError(Exception):
    """A business rule refused an operation. Nothing was changed.

    ``message`` is for people and names the rule's figure; ``field`` names the form field the
    message belongs to (``None``: the whole form); ``rule`` is the SPEC id (``R-TR-2``).
    """

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule
        self.code = code

    def __str__(self) -> str:
        return self.message


class PermissionDenied(DomainError):
    """The actor may not do this (R-ORG-6)."""

    def __init__(self, message: str = "You are not allowed to do this.", **kwargs):
        kwargs.setdefault("code", "forbidden")
        kwargs.setdefault("rule", "R-ORG-6")
        super().__init__(message, **kwargs)
