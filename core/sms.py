import logging

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger("eac.sms")


class LogSmsGateway:
    """The default SMS gateway: writes the message to the log (R-NT-1)."""

    def send(self, *, phone: str, text: str) -> None:
        log.info("SMS to %s: %s", phone, text)


def get_sms_gateway():
    return import_string(settings.EAC_SMS_GATEWAY)()
