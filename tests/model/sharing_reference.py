"""A small, pure-Python reference model of SPEC section 7 (equity asset sharing, R-SH-2 to R-SH-8).

Written from the SPEC text; it imports nothing of the project and nothing of Django. The stateful test
``test_stateful_sharing.py`` drives the same operations against the real services (``sharing.services``,
the directory services of ``accounts.services``, ``sharing.rating``) and compares, after every step, every
grant (asset, account, effective from, effective to), every scope, every uncovered account, every rule,
every coupon's remaining value, and the coupon count and outstanding balance of every account.

Each operation first decides, without changing anything, whether it is refused. It returns the set of
reasons that refuse it, each ``(rule id, kind)``: kind ``DENIED`` is a refusal for who the actor is (the
services raise ``PermissionDenied``), ``REFUSED`` any other (``DomainError``); rule id ``None`` is a refusal
the SPEC names no rule for (e.g. "not shared"). An empty set means it was applied.

Times are ``datetime`` values the caller passes (``at``): the model never reads a clock.

Where the SPEC is silent the model takes a decision and says so in a comment marked *Decision*.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

ZERO = Decimal("0.00")
DENIED, REFUSED = "denied", "refused"
NONE, ACCOUNTS, FOLDERS = "none", "accounts", "folders"
COUPON = "coupon"


@dataclass
class Account:
    key: str
    account_id: str  # the shown account ID: a full folder scope covers the first ones in this order (R-SH-4)
    enterprise: str | None
    folder: str | None
    company: str  # verified company (R-ORG-1)
    management: bool = False


@dataclass
class Folder:
    key: str
    enterprise: str
    parent: str | None


@dataclass
class Grant:
    """R-SH-6: the account may use the asset for usage in [start, end); ``end`` None while open."""

    account: str
    start: datetime
    end: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


@dataclass
class Asset:
    key: str
    order: int  # provisioning order: ties of the deduction order are broken by it (R-US-2)
    owner: str
    kind: str
    valid_from: datetime
    valid_to: datetime
    products: tuple = ()  # a coupon's applicable products; empty: all (R-US-6)
    remaining: Decimal | None = None  # a coupon's remaining value
    cancelled: bool = False
    scope_type: str = NONE
    scope_accounts: set = field(default_factory=set)
    scope_folders: set = field(default_factory=set)
    grants: list = field(default_factory=list)
    uncovered: dict = field(default_factory=dict)  # account -> since (R-SH-4)

    def open_grants(self) -> dict[str, Grant]:
        return {g.account: g for g in self.grants if g.end is None}

    def usable_at(self, at) -> bool:
        """*Decision*: an asset can be given to accounts while it is not cancelled and has not expired
        (it may be upcoming: valid later)."""
        return not self.cancelled and at < self.valid_to


@dataclass
class Rule:
    """An automatic sharing rule of one asset type (R-SH-3)."""

    scope_type: str
    accounts: set
    folders: set
    enabled: bool


class SharingModel:
    def __init__(self, *, limit: int, enterprise_company: dict[str, str]):
        self.limit = limit  # R-SH-4 (100 in the SPEC; the test makes it small so it is reachable)
        self.enterprise_company = dict(enterprise_company)
        self.folders: dict[str, Folder] = {}
        self.accounts: dict[str, Account] = {}
        self.assets: dict[str, Asset] = {}
        self.rules: dict[tuple[str, str], Rule] = {}
        self.outstanding: dict[str, Decimal] = {}
        self.last_counts: dict | None = None  # added / ended / kept of the last share
        self.over_limit_count: int | None = None  # the count a refused share or rule reached (R-SH-4)

    # --- set-up ----------------------------------------------------------------------------------

    def add_folder(self, key, *, enterprise, parent=None):
        self.folders[key] = Folder(key, enterprise, parent)

    def add_account(self, key, *, account_id, enterprise, folder, company, management=False):
        self.accounts[key] = Account(key, account_id, enterprise, folder, company, management)
        self.outstanding[key] = ZERO

    # --- the directory -----------------------------------------------------------------------------

    def in_subtree(self, folder: str, top: str) -> bool:
        while folder is not None:
            if folder == top:
                return True
            folder = self.folders[folder].parent
        return False

    def same_company_as_enterprise(self, key) -> bool:
        account = self.accounts[key]
        return account.enterprise is not None and account.company == self.enterprise_company[account.enterprise]

    def resolve(self, enterprise, owner, scope_type, accounts, folders) -> tuple[list[str], list[str]]:
        """R-SH-2, R-SH-5: the accounts a scope reaches, (eligible, of another company), by account ID.

        A folder scope covers the accounts of the enterprise in the folders' subtrees; an account scope
        the listed accounts that are in the enterprise. The owner is excluded (R-SH-4: "owner excluded").
        For a rule (``owner`` None) "same company" means the enterprise's company.
        """
        if scope_type == FOLDERS:
            candidates = [a for a in self.accounts.values() if a.enterprise == enterprise and a.folder is not None
                          and any(self.in_subtree(a.folder, f) for f in folders)]
        else:
            candidates = [self.accounts[k] for k in set(accounts) if self.accounts[k].enterprise == enterprise]
        company = self.accounts[owner].company if owner else self.enterprise_company[enterprise]
        eligible, other = [], []
        for account in sorted(candidates, key=lambda a: a.account_id):
            if account.key == owner:
                continue
            (eligible if account.company == company else other).append(account.key)
        return eligible, other

    def _set_recipients(self, asset: Asset, recipients, *, at, uncovered=()) -> dict:
        """Open grants of ``asset`` become exactly ``recipients``: the others end at ``at`` (R-SH-7), the new ones
        start at ``at`` (R-SH-6), the ones kept keep their start. The uncovered list is replaced."""
        open_grants = asset.open_grants()
        ended = [k for k in open_grants if k not in recipients]
        for k in ended:
            open_grants[k].end = at
        added = [k for k in recipients if k not in open_grants]
        asset.grants.extend(Grant(k, at) for k in added)
        asset.uncovered = {k: at for k in uncovered}
        return {"added": len(added), "ended": len(ended), "kept": len(recipients) - len(added)}

    def _set_scope(self, asset: Asset, scope_type, accounts=(), folders=()):
        asset.scope_type = scope_type
        asset.scope_accounts = set(accounts)
        asset.scope_folders = set(folders)

    def _permission(self, actor, asset: Asset | None = None, enterprise: str | None = None) -> set:
        """R-ORG-6, R-SH-8: only the enterprise administrator, and only for its own enterprise's assets."""
        role, own = actor
        if role != "admin":
            return {("R-ORG-6", DENIED)}
        if enterprise is not None and own != enterprise:
            return {("R-ORG-6", DENIED)}
        if asset is not None and self.accounts[asset.owner].enterprise != own:
            return {("R-SH-8", DENIED)}  # another enterprise's asset, or one its account received
        return set()

    def _scope_reasons(self, enterprise, scope_type, accounts, folders) -> set:
        if scope_type == ACCOUNTS:
            if not accounts:
                return {("R-SH-2", REFUSED)}
            if any(self.accounts[k].enterprise != enterprise for k in accounts):
                return {("R-SH-8", REFUSED)}  # only accounts of its enterprise
        elif scope_type == FOLDERS:
            if not folders:
                return {("R-SH-2", REFUSED)}
            if any(self.folders[f].enterprise != enterprise for f in folders):
                return {(None, REFUSED)}
        else:
            return {("R-SH-2", REFUSED)}
        return set()

    # --- sharing by asset id (R-SH-2 to R-SH-5, R-SH-7, R-SH-8) ------------------------------------

    def share(self, actor, asset_key, scope_type, *, accounts=(), folders=(), at) -> set:
        asset = self.assets[asset_key]
        reasons = self._permission(actor, asset)
        if reasons:
            return reasons
        owner = self.accounts[asset.owner]
        enterprise = owner.enterprise
        if not self.same_company_as_enterprise(owner.key):
            reasons.add(("R-ORG-5", REFUSED))  # nothing of an account of another company is shared
        if not asset.usable_at(at):
            reasons.add((None, REFUSED))
        scope = self._scope_reasons(enterprise, scope_type, accounts, folders)
        reasons |= scope
        if not scope:
            eligible, other = self.resolve(enterprise, owner.key, scope_type, accounts, folders)
            if scope_type == ACCOUNTS and other:
                reasons.add(("R-SH-5", REFUSED))  # a listed account cannot receive: the share is refused
            if len(eligible) > self.limit:
                reasons.add(("R-SH-4", REFUSED))
                self.over_limit_count = len(eligible)
        if reasons:
            return reasons
        # R-SH-5 *Decision* (as the SPEC's R-SH-2 "covers every account in the subtree"): a folder scope
        # silently leaves out the accounts of another company instead of refusing the share.
        self._set_scope(asset, scope_type, accounts, folders)
        self.last_counts = self._set_recipients(asset, eligible, at=at)
        return set()

    def unshare(self, actor, asset_key, *, at) -> set:
        asset = self.assets[asset_key]
        reasons = self._permission(actor, asset)
        if reasons:
            return reasons
        if not self.same_company_as_enterprise(asset.owner):
            reasons.add(("R-ORG-5", REFUSED))
        if asset.scope_type == NONE and not asset.open_grants():
            reasons.add((None, REFUSED))  # not shared: nothing to end
        if reasons:
            return reasons
        self._set_scope(asset, NONE)
        self.last_counts = self._set_recipients(asset, [], at=at)
        return set()

    # --- automatic sharing rules and provisioning (R-SH-3) --------------------------------------------

    def set_rule(self, actor, enterprise, kind, scope_type, *, accounts=(), folders=(), enabled=True) -> set:
        reasons = self._permission(actor, enterprise=enterprise)
        if reasons:
            return reasons
        reasons = self._scope_reasons(enterprise, scope_type, accounts, folders)
        if reasons:
            return reasons
        eligible, _ = self.resolve(enterprise, None, scope_type, accounts, folders)
        if len(eligible) > self.limit:
            self.over_limit_count = len(eligible)
            return {("R-SH-4", REFUSED)}
        self.rules[(enterprise, kind)] = Rule(scope_type, set(accounts), set(folders), bool(enabled))
        return set()

    def provision(self, key, *, owner, kind, valid_from, valid_to, at, products=(), face_value=None):
        """The account manager provisions an asset; its enterprise's enabled rule of its type shares it with
        the rule's scope as it resolves now (R-SH-3). Editing the rule later changes nothing of it."""
        asset = Asset(key, len(self.assets), owner, kind, valid_from, valid_to, tuple(products),
                      face_value if kind == COUPON else None)
        self.assets[key] = asset
        account = self.accounts[owner]
        if not self.same_company_as_enterprise(owner):
            return  # outside any directory, or another company than its enterprise (R-ORG-5): no rule applies
        rule = self.rules.get((account.enterprise, kind))
        if rule is None or not rule.enabled:
            return
        accounts = [k for k in rule.accounts if self.accounts[k].enterprise == account.enterprise]
        eligible, _ = self.resolve(account.enterprise, owner, rule.scope_type, accounts, rule.folders)
        # R-SH-4 *Decision*: the rule's scope was within the limit when saved; if it grew since, the first
        # ``limit`` accounts (by account ID) receive the asset and the others are shown as uncovered.
        self._set_scope(asset, rule.scope_type, accounts, rule.folders)
        self._set_recipients(asset, eligible[:self.limit], at=at, uncovered=eligible[self.limit:])

    def cancel(self, asset_key, *, at):
        """Back office: the asset is cancelled; its grants end now (R-SH-7)."""
        asset = self.assets[asset_key]
        asset.cancelled = True
        self._set_scope(asset, NONE)
        self._set_recipients(asset, [], at=at)

    # --- membership: folder scopes follow it at once (R-SH-2, R-SH-4, R-SH-7) ---------------------------

    def _follow(self, key, *, old_enterprise, at):
        account = self.accounts[key]
        enterprises = {e for e in (old_enterprise, account.enterprise) if e}
        for asset in sorted(self.assets.values(), key=lambda a: a.order):
            owner = self.accounts[asset.owner]
            if owner.enterprise not in enterprises or asset.scope_type != FOLDERS or asset.owner == key:
                continue
            should = (account.folder is not None and account.enterprise == owner.enterprise
                      and account.company == owner.company
                      # R-ORG-5: an owner verified as another company than its enterprise shares nothing
                      and self.same_company_as_enterprise(owner.key)
                      and any(self.in_subtree(account.folder, f) for f in asset.scope_folders)
                      and asset.usable_at(at))
            open_grants = asset.open_grants()
            if key in open_grants and not should:
                open_grants[key].end = at  # leaves the scope: the benefit stops now (R-SH-7)
                asset.uncovered.pop(key, None)
            elif should and key not in open_grants:
                if len(open_grants) < self.limit:
                    asset.grants.append(Grant(key, at))  # joins the scope: receives it now (R-SH-2)
                    asset.uncovered.pop(key, None)
                else:
                    asset.uncovered.setdefault(key, at)  # full: left uncovered (R-SH-4)
            elif not should:
                asset.uncovered.pop(key, None)
        if old_enterprise and account.enterprise != old_enterprise:
            # Left the directory: every grant of its former enterprise's assets ends, it leaves every account
            # scope, it is no longer an uncovered account of them, and its own assets stop being shared (they
            # are no longer assets of that enterprise, R-SH-8).
            for asset in self.assets.values():
                asset.scope_accounts.discard(key)
                if self.accounts[asset.owner].enterprise == old_enterprise:
                    grant = asset.open_grants().get(key)
                    if grant is not None:
                        grant.end = at
                    asset.uncovered.pop(key, None)
                if asset.owner == key and asset.scope_type != NONE:
                    self._set_scope(asset, NONE)
                    self._set_recipients(asset, [], at=at)

    def move(self, actor, keys, folder, *, at) -> set:
        """R-ORG-4: the administrator moves accounts of its enterprise into a folder (in account order)."""
        target = self.folders[folder]
        reasons = self._permission(actor, enterprise=target.enterprise)
        if reasons:
            return reasons
        if not keys:
            return {(None, REFUSED)}
        if any(self.accounts[k].enterprise != target.enterprise for k in keys):
            return {(None, REFUSED)}
        for key in sorted(set(keys), key=lambda k: self.accounts[k].account_id):
            account = self.accounts[key]
            if account.folder == folder:
                continue
            account.folder = folder
            self._follow(key, old_enterprise=account.enterprise, at=at)
        return set()

    def remove(self, actor, key, *, at) -> set:
        """R-ORG-4: the administrator removes an account from the directory."""
        role, own = actor
        account = self.accounts[key]
        if role != "admin" or account.enterprise != own:
            return {("R-ORG-6", DENIED)}
        if account.management:
            return {(None, REFUSED)}
        old = account.enterprise
        account.enterprise = account.folder = None
        self._follow(key, old_enterprise=old, at=at)
        return set()

    def invite(self, actor, enterprise, key) -> set:
        """R-ORG-4: the administrator invites an account that is in no directory."""
        reasons = self._permission(actor, enterprise=enterprise)
        if reasons:
            return reasons
        if self.accounts[key].enterprise is not None:
            return {(None, REFUSED)}
        return set()

    def join(self, key, *, enterprise, folder, at):
        """The invited account accepts: it joins ``folder`` now."""
        account = self.accounts[key]
        account.enterprise, account.folder = enterprise, folder
        self._follow(key, old_enterprise=None, at=at)

    def reverify(self, key, company, *, at):
        """The account manager re-verifies an account's company (R-ORG-1). R-SH-5: grants between accounts of
        different companies end now, both those it received and those of its own assets.

        *Decision*: re-verification only ends grants; it starts none (a folder scope gives the asset to an
        account when it joins or moves, a share when it is made)."""
        account = self.accounts[key]
        if account.company == company:
            return
        account.company = company
        for asset in self.assets.values():
            owner = self.accounts[asset.owner]
            for grant in asset.open_grants().values():
                if (grant.account == key and owner.company != company) or \
                        (asset.owner == key and self.accounts[grant.account].company != company):
                    grant.end = at
            # An account of another company than the owner could not receive the asset: it is not "left
            # uncovered" by the limit (R-SH-4) any more.
            for other in list(asset.uncovered):
                if (other == key or asset.owner == key) and self.accounts[other].company != owner.company:
                    del asset.uncovered[other]

    # --- usage (R-SH-6, R-SH-7, R-US-2, R-US-6) ----------------------------------------------------------

    def applies(self, asset: Asset, key, hour) -> bool:
        """The asset pays for ``key``'s usage of ``hour``: valid then, and owned, or shared by a grant whose
        interval contains the hour (R-SH-6); a grant ended before the hour does not (R-SH-7).

        *Decision*: an asset cancelled before the usage is rated pays for nothing more."""
        if asset.cancelled or not (asset.valid_from <= hour < asset.valid_to):
            return False
        return asset.owner == key or any(g.account == key and g.contains(hour) for g in asset.grants)

    def rate(self, key, *, hour, amount: Decimal, product: str) -> list[tuple[str | None, Decimal]]:
        """The deduction lines of one usage record: coupons (own before shared, then the one that expires
        first), then the balance (R-US-2, R-US-6). Returns [(coupon key or None for the balance, amount)]."""
        candidates = sorted((a for a in self.assets.values() if a.kind == COUPON and self.applies(a, key, hour)),
                            key=lambda a: (a.owner != key, a.valid_to, a.order))
        lines, rest = [], amount
        for asset in candidates:
            if rest <= 0:
                break
            if asset.remaining <= 0 or (asset.products and product not in asset.products):
                continue
            use = min(asset.remaining, rest)
            asset.remaining -= use
            rest -= use
            lines.append((asset.key, use))
        if rest > 0:
            self.outstanding[key] += rest  # the accounts hold no cash: the rest is billed (R-MON-5)
            lines.append((None, rest))
        return lines

    def coupons(self, key, at) -> int:
        """R-MON-3: valid coupons with remaining value the account can use now, owned or shared to it."""
        return sum(1 for a in self.assets.values() if a.kind == COUPON and a.remaining > 0 and self.applies(a, key, at))

    def grants(self) -> list[tuple]:
        return sorted(((a.key, g.account, g.start, g.end) for a in self.assets.values() for g in a.grants),
                      key=repr)
