import django.dispatch

# Sent inside the transaction that moves an account into, within, or out of a resource directory.
# kwargs: account, old_enterprise_id, old_folder, new_folder (None when removed), at.
# The sharing app listens, to follow folder-scoped shares at once (R-SH-2).
membership_changed = django.dispatch.Signal()

# Sent inside the transaction in which the account manager re-verifies an account's company (R-ORG-1).
# kwargs: account (with its new verified_company_id), old_company_id, at.
# The sharing app listens: grants between accounts of different companies end at once (R-SH-5).
company_changed = django.dispatch.Signal()
