from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from core.models import IdempotencyKey


class Command(BaseCommand):
    help = ("Delete idempotency keys older than EAC_IDEMPOTENCY_KEEP_HOURS (R-TR-7; at least 24 hours). "
            "The operations' records stay. Run it daily from cron: "
            "30 3 * * * cd /srv/eac && .venv/bin/python manage.py prune_idempotency_keys")

    def handle(self, *args, **options):
        hours = settings.EAC_IDEMPOTENCY_KEEP_HOURS
        if hours < 24:
            hours = 24  # the guarantee of R-TR-7 wins over a setting that is too low
        cutoff = timezone.now() - timedelta(hours=hours)
        deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(f"{deleted} idempotency key(s) older than {hours} hours deleted.")
