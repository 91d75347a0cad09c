"""``manage.py import_usage FILE [--no-rate]``: import usage records from CSV or .xlsx, then rate them (R-US-1)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sharing.rating import rate_pending
from sharing.usage_import import MAX_FILE_BYTES, MSG_FILE_TOO_BIG, UsageImportError, usage_import
from core.errors import DomainError


class Command(BaseCommand):
    help = "Import usage records from a .csv or .xlsx file (all rows or none), then rate them."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--no-rate", action="store_true", help="Only import; rate later with rate_usage.")

    def handle(self, *args, file, no_rate=False, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        if path.stat().st_size > MAX_FILE_BYTES:  # refused before it is read into memory
            raise CommandError(MSG_FILE_TOO_BIG)
        try:
            batch = usage_import(actor=None, file_name=path.name, content=path.read_bytes())
        except UsageImportError as exc:
            for number, message in exc.errors:
                self.stderr.write(f"Row {number}: {message}")
            raise CommandError(exc.message)
        except DomainError as exc:
            raise CommandError(exc.message)
        self.stdout.write(f"Imported {batch.new_records} new usage records of {batch.rows} rows from {path.name}.")
        if not no_rate:
            rated = rate_pending()
            self.stdout.write(f"Rated {rated} usage records.")
