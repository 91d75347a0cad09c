from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "sharing"
    verbose_name = "Equity asset sharing"

    def ready(self):
        from accounts.signals import membership_changed

        from .services import on_membership_changed

        # Folder-scoped shares follow membership at once, inside the membership transaction (R-SH-2).
        membership_changed.connect(on_membership_changed, dispatch_uid="sharing.follow_membership")
