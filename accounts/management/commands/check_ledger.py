from django.core.management.base import BaseCommand, CommandError

from accounts.ledger import ledger_differences


class Command(BaseCommand):
    help = "Verify that every stored balance equals its ledger sum and that the books balance (R-MON-4)."

    def handle(self, *args, **options):
        problems = ledger_differences()
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError(f"{len(problems)} difference(s) found in the books")
        self.stdout.write(self.style.SUCCESS("Ledger clean: every balance equals its ledger sum; the books balance."))
