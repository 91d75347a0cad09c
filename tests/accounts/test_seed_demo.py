from django.core.management import call_command

from accounts.ledger import ledger_differences
from accounts.models import Account, CreditContract, Enterprise, User


def test_seed_demo_builds_a_consistent_enterprise_R_MON_4(db):
    call_command("seed_demo", "--accounts", "120")
    acme = Enterprise.objects.get(name="Acme Cloud Ltd")
    assert Account.objects.filter(enterprise=acme).count() == 120
    assert CreditContract.objects.get(enterprise=acme).status == CreditContract.Status.PENDING
    assert User.objects.get(username="admin").is_enterprise_admin
    assert not User.objects.get(username="member").is_enterprise_admin
    assert User.objects.get(username="manager").is_staff
    assert ledger_differences() == []


def test_seed_demo_if_empty_does_not_load_twice(db):
    call_command("seed_demo", "--accounts", "20")
    call_command("seed_demo", "--if-empty")
    assert Enterprise.objects.filter(name="Acme Cloud Ltd").count() == 1
