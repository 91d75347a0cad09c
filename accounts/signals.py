import django.dispatch

# Sent inside the transaction that moves an account into, within, or out of a resource directory.
# kwargs: account, old_enterprise_id, old_folder, new_folder (None when removed), at.
# The sharing app listens, to follow folder-scoped shares at once (R-SH-2).
membership_changed = django.dispatch.Signal()
