"""SMS gateways for tests, chosen with settings.EAC_SMS_GATEWAY (the gateway is pluggable, R-NT-1)."""

SENT: list[tuple[str, str]] = []


class FailingSmsGateway:
    """A gateway that is down."""

    def send(self, *, phone: str, text: str) -> None:
        raise ConnectionError("SMS gateway unreachable")


class RecordingSmsGateway:
    def send(self, *, phone: str, text: str) -> None:
        SENT.append((phone, text))
