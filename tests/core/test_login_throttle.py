"""The sign-in rate limit (issue 5, Reliability 5; R-ORG-6: nobody gets into an account by guessing).

Five failed sign-ins for a user name within 15 minutes lock that user name (even the right password is refused,
with a clear message and status 429) until the oldest of them leaves the window; twenty from one address lock the
address; a successful sign-in clears the user name's count. The back office sign-in has the same limit.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.login_throttle import MSG_LOCKED
from core.models import LoginFailure
from tests.factories import make_user

PASSWORD = "pw-Secret-123"
LOGIN = "/login/"


@pytest.fixture
def alice(db):
    return make_user(username="alice", password=PASSWORD)


def sign_in(client, username, password, ip="10.0.0.1", url=LOGIN):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_five_failures_lock_the_user_name_even_for_the_right_password_R_ORG_6(client, alice):
    for _ in range(5):
        response = sign_in(client, "alice", "wrong")
        assert response.status_code == 200
        assert b"Please enter a correct" in response.content
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed sign-ins for this user name" in response.content
    assert b"locked for 15 more minutes" in response.content
    assert not signed_in(client)
    # Attempts refused while locked are not counted: the lock cannot be stretched by hammering.
    assert LoginFailure.objects.filter(username="alice").count() == 5


def test_four_failures_then_the_right_password_signs_in_and_clears_the_count_R_ORG_6(client, alice):
    for _ in range(4):
        sign_in(client, "alice", "wrong")
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 302 and signed_in(client)
    assert not LoginFailure.objects.filter(username="alice").exists()
    client.logout()
    for _ in range(4):  # a fresh count: four more failures still do not lock
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_the_lock_ends_when_the_oldest_failure_leaves_the_window_R_ORG_6(client, alice):
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    oldest = LoginFailure.objects.order_by("created_at").first()
    LoginFailure.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(minutes=15, seconds=1))
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_the_message_counts_down_the_minutes_left_R_ORG_6(client, alice):
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    LoginFailure.objects.update(created_at=timezone.now() - timedelta(minutes=14, seconds=30))
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert MSG_LOCKED.format(who="for this user name", minutes=1, s="").encode() in response.content


def test_the_user_name_is_locked_from_every_address_and_in_any_case_R_ORG_6(client, alice):
    for i in range(5):
        sign_in(client, "Alice" if i % 2 else "alice", "wrong", ip=f"10.0.0.{i + 1}")
    assert sign_in(client, "alice", PASSWORD, ip="192.168.1.1").status_code == 429


def test_twenty_failures_from_one_address_lock_that_address_for_every_user_name_R_ORG_6(client, alice):
    for i in range(20):
        sign_in(client, f"guess{i}", "wrong", ip="203.0.113.9")
    response = sign_in(client, "alice", PASSWORD, ip="203.0.113.9")
    assert response.status_code == 429
    assert b"from your network address" in response.content
    assert sign_in(client, "alice", PASSWORD, ip="198.51.100.1").status_code == 302  # another address is free


def test_another_user_name_is_not_locked_by_alices_failures_R_ORG_6(client, alice):
    make_user(username="bob", password=PASSWORD)
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "bob", PASSWORD, ip="10.0.0.2").status_code == 302


def test_unknown_user_names_are_counted_like_known_ones_R_ORG_6(client, db):
    """The limit does not tell whether a user name exists: an unknown one locks the same way."""
    for _ in range(5):
        assert sign_in(client, "nobody", "wrong").status_code == 200
    assert sign_in(client, "nobody", "wrong").status_code == 429


def test_the_back_office_sign_in_has_the_same_limit_R_ORG_6(client, db):
    make_user(username="am", password=PASSWORD, staff=True)
    url = reverse("admin:login")
    for _ in range(5):
        assert sign_in(client, "am", "wrong", url=url).status_code == 200
    response = sign_in(client, "am", PASSWORD, url=url)
    assert b"Too many failed sign-ins for this user name" in response.content
    assert not signed_in(client)


def test_failures_older_than_the_window_are_pruned(client, alice):
    sign_in(client, "alice", "wrong")
    LoginFailure.objects.update(created_at=timezone.now() - timedelta(hours=1))
    sign_in(client, "bob", "wrong")
    assert list(LoginFailure.objects.values_list("username", flat=True)) == ["bob"]
