"""``manage.py rate_usage``: rate every usage record not rated yet, in batches (R-US-2 to R-US-7)."""

from django.core.management.base import BaseCommand

from sharing.rating import DEFAULT_BATCH, rate_pending


class Command(BaseCommand):
    help = "Rate the usage records not rated yet; safe to run again (a rated record is never rated twice)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)

    def handle(self, *args, batch_size, **options):
        self.stdout.write(f"Rated {rate_pending(batch_size=batch_size)} usage records.")
