from django.core.management.base import BaseCommand

from accounts.services import send_alert_reminders


class Command(BaseCommand):
    help = ("Send today's low balance reminders (R-AL-5). Safe to run more than once a day; "
            "run it hourly from cron: 0 * * * * cd /srv/eac && .venv/bin/python manage.py send_alert_reminders")

    def handle(self, *args, **options):
        sent = send_alert_reminders()
        self.stdout.write(f"{sent} reminder(s) sent.")
