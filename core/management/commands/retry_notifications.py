from django.core.management.base import BaseCommand

from core.notifications import retry_pending


class Command(BaseCommand):
    help = ("Enqueue again the outbox rows not delivered yet (R-NT-1): a failed SMS or email is retried until "
            "EAC_NOTIFICATION_MAX_ATTEMPTS, then marked failed. Run it every few minutes from cron: "
            "*/5 * * * * cd /srv/eac && .venv/bin/python manage.py retry_notifications")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=60, help="seconds a row waits before a retry")

    def handle(self, *args, **options):
        count = retry_pending(older_than_seconds=options["older_than"])
        self.stdout.write(f"{count} notification(s) enqueued again.")
