import time

from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo
from accounts.models import Enterprise


class Command(BaseCommand):
    help = "Load the demo enterprise: accounts in nested folders, money history, a pending contract, users per role."

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=40, help="accounts in the demo enterprise (up to 10,000)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing when the database has an enterprise")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, accounts, if_empty, seed, **options):
        if accounts < 1 or accounts > 100_000:
            raise CommandError("--accounts must be between 1 and 100,000")
        if Enterprise.objects.exists():
            if if_empty:
                self.stdout.write("The database already has data; demo not loaded again.")
                self._print_logins()
                return
            raise CommandError("The database already has data; use a new database or --if-empty.")
        started = time.monotonic()
        result = seed_demo(accounts=accounts, seed=seed)
        self.stdout.write(self.style.SUCCESS(
            f"Demo loaded: {result['accounts']} accounts in {result['enterprise']} "
            f"in {time.monotonic() - started:.1f}s."))
        self._print_logins()

    def _print_logins(self):
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, what in DEMO_USERS.items():
            self.stdout.write(f"  {username:8} {what}")
