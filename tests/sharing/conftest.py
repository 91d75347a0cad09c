from unittest import mock

import pytest


class Clock:
    """Sets what ``django.utils.timezone.now()`` returns, so grants start and end at known moments."""

    def __init__(self):
        self.now = None

    def set(self, moment):
        self.now = moment

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    from .helpers import at

    fake = Clock()
    fake.now = at(8)
    with mock.patch("django.utils.timezone.now", fake):
        yield fake
