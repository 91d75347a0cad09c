"""The texts of the refusals and notices of the accounts services.

Constants, so that services, previews and tests use the very same words. Each names the figure it is about.
"""

MSG_NOT_ADMIN = "Only the enterprise administrator of this enterprise can do this (R-ORG-6)."
MSG_NOT_ACCOUNT_MANAGER = "Only an account manager can do this in the back office (R-ORG-6)."
MSG_NOT_IN_ENTERPRISE = "Account {account} is not an account of this enterprise."
MSG_OTHER_COMPANY = ("Account {account} is verified as a different company from the enterprise, so fund "
                     "operations and sharing with it are refused (R-ORG-5).")
MSG_DISABLED = ("Credit control and self-service transfer are disabled for account {account} ({reason}). "
                "Contact your business manager (R-CR-6).")
MSG_SAME_ACCOUNT = "Choose two different accounts (R-TR-1)."
MSG_REMARK_REQUIRED = "Enter a remark of 1 to 200 characters (R-TR-1)."
MSG_REMARK_TOO_LONG = "A remark has at most 200 characters; this one has {length} (R-TR-1)."
MSG_PAYER_OVERDUE = "Account {account} has an overdue amount of {overdue}; it cannot transfer until it is paid (R-TR-2)."
MSG_OVER_TRANSFERABLE = "Transferable amount is {limit}; you asked for {amount} (R-TR-2)."
MSG_NO_TRANSFER = "Account {source} never transferred to account {target}, so there is nothing to withdraw (R-TR-4)."
MSG_OVER_WITHDRAWABLE = "Withdrawable amount is {limit}; you asked for {amount} (R-TR-4)."
MSG_CONTRACT_PENDING = ("The enterprise's credit control contract is pending confirmation, so credit limits "
                        "cannot be set yet: the management account must confirm it on the Contracts page (R-CR-1).")
MSG_NO_CONTRACT = ("The enterprise has no credit control contract, so credit limits cannot be set: ask your "
                   "account manager to grant a total credit limit (R-CR-1).")
MSG_LIMIT_UNCHANGED = "The new credit limit equals the current credit limit {current}; nothing to change."
MSG_OVER_ALLOCABLE = ("Maximum quota allocable is {allocable}, so the highest credit limit allowed is {highest}; "
                      "you asked for {amount} (R-CR-4).")
MSG_DECREASE_TOO_LOW = ("The lowest credit limit allowed is {lowest}: available credit must stay above 0.00 "
                        "(cash balance {cash} + new limit - outstanding {outstanding}); you asked for {amount} (R-CR-5).")
MSG_CONTRACT_NOT_PENDING = "This credit control contract is already confirmed."
MSG_EAC_DISABLED = "The Enterprise Account Center is not enabled for this enterprise (R-ORG-2)."
MSG_FOLDER_DEPTH = "Folders nest at most 5 levels below the root folder (R-ORG-3)."
MSG_FOLDER_NAME = "A folder name has 1 to 24 characters (R-ORG-3)."
MSG_FOLDER_NAME_TAKEN = "A folder named {name} already exists in this folder (R-ORG-3)."
MSG_FOLDER_NOT_EMPTY = "Folder {name} is not empty: it has {folders} folders and {accounts} accounts (R-ORG-4)."
MSG_FOLDER_ROOT = "The root folder cannot be renamed or deleted."
MSG_ALREADY_MEMBER = "Account {account} is already in a resource directory."
MSG_ALREADY_INVITED = "Account {account} already has an open invitation."
MSG_INVITATION_CLOSED = "This invitation is {status}; it can no longer be answered."
MSG_UNKNOWN_ACCOUNT = "No account has the ID {account_id}."
MSG_REMOVE_MANAGEMENT = "The management account cannot be removed from its own directory."
MSG_REMOVE_TRANSFER_BOOK = ("Account {account} still has a transfer book balance of {amount}: withdraw it to its "
                            "source accounts (or let the account spend it) before removing the account (R-TR-4).")
MSG_REMOVE_CREDIT = "Account {account} still has a credit limit of {limit}; set it to 0.00 before removing it."
MSG_NO_ACCOUNTS = "Select at least one account."
