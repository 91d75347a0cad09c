# Equity asset sharing (SPEC section 7, 8): built in its own issue.
