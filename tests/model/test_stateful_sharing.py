"""Model-based test of equity asset sharing: random sequences of section 7 operations against the services,
checked against a pure-Python reference model (``tests/model/sharing_reference.py``) after every step.

R-SH-2 to R-SH-8, with R-ORG-4/R-ORG-5 (the directory the scopes follow) and R-SH-6/R-SH-7 through rating
(R-US-2, R-US-6: coupons) and the coupon count of R-MON-3.

Each Hypothesis example builds one enterprise: the management account MA at the root folder, four members
A..D and X (verified as another company) placed at random in the folders Root, Ops, Ops/EU and Sales,
N (same company, in no directory: it can be invited), and another enterprise's management account O. All
of it sits in a savepoint rolled back at the end of the example, so examples never see each other's rows.

Operations: share an asset by id with accounts or folders, unshare, set the automatic rule of an asset type,
provision (rules apply), cancel (back office), move accounts between folders, remove an account, invite and
answer, re-verify an account's company, let time pass, and rate a usage record at a chosen usage hour.
Actors: the enterprise administrator, a member user, a user of a receiving account holding the
administrator role (not acting for the management account: it cannot share on, R-SH-8) and another
enterprise's administrator.

Time is Django's clock (``django.utils.timezone.now``), patched to a fake "now" that the ``time_passes`` rule
moves forward by whole minutes, so every grant's effective from / to is an exact, known moment.

The limit of R-SH-4 (``sharing.selectors.SHARE_LIMIT``, 100, imported by ``sharing.services``) is patched to
``LIMIT`` = 2 in both modules for the examples, so that full scopes, refusals with the count and uncovered
accounts happen with a handful of accounts. ``tests/sharing`` holds the 100 itself
(``test_100_accounts_allowed_and_the_101st_refused_with_the_count_R_SH_4``).

``HYPOTHESIS_PROFILE=long`` runs many more and longer sequences; ``SHARING_MODEL_EXAMPLES`` sets the count.
"""

import itertools
import os
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from accounts import services as account_services
from accounts.models import Account, Folder, Invitation, User
from core.errors import DomainError, PermissionDenied
from core.models import AuditEvent
from sharing import rating, services
from sharing import selectors as sharing_selectors
from sharing.models import Asset, AssetShare, AssetType, AutoShareRule, Deduction, Grant, UncoveredAccount, UsageRecord
from tests.factories import make_account, make_enterprise, make_user

from . import driving
from .sharing_reference import ACCOUNTS, COUPON, DENIED, FOLDERS, REFUSED, SharingModel

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
SETTINGS = settings(
    max_examples=400 if LONG else int(os.environ.get("SHARING_MODEL_EXAMPLES", "30")),
    stateful_step_count=60 if LONG else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

LIMIT = 2  # R-SH-4's 100, made small for the examples (see the module docstring)
E, E2 = "E", "E2"
OTHER_COMPANY = "91440300OTHER0001"
START = timezone.make_aware(datetime(2025, 6, 2, 9, 0))
FAR = timezone.make_aware(datetime(2099, 1, 1))

MEMBERS = ["A", "B", "C", "D", "X"]  # placed in folders at the start; X is verified as another company
ALL = ["MA", *MEMBERS, "N", "O"]  # N: in no directory at the start; O: another enterprise's management account
E_FOLDERS = ["root", "ops", "eu", "sales"]
ALL_FOLDERS = [*E_FOLDERS, "other"]  # other: the root folder of the other enterprise
ACTORS = {"admin": ("admin", E), "member": ("member", E), "receiver": ("member", E), "foreign": ("admin", E2)}
KINDS = {COUPON: AssetType.COUPON, "savings_plan": AssetType.SAVINGS_PLAN, "scu_package": AssetType.SCU_PACKAGE,
         "reserved_instance": AssetType.RESERVED_INSTANCE}
# Typed fields of the non-coupon assets: none of them applies to the usage the test rates (products ecs and
# rds, no instance type), so only coupons pay for it and the rating model stays that of R-US-6.
TYPED = {
    "savings_plan": {"hourly_commitment": "10.00", "discount_rate": "0.2000", "products": ["sp-only"]},
    "scu_package": {"capacity_gb": "100", "products": ["nas"]},
    "reserved_instance": {"instance_type": "ecs.g7.large", "region": "cn-hangzhou", "instance_count": 2},
}


# Strategies -------------------------------------------------------------------------------------

def mostly(usual, unusual, *, in_ten: int = 8):
    """``usual`` ``in_ten`` times out of ten, else ``unusual``."""
    return st.integers(1, 10).flatmap(lambda i: usual if i <= in_ten else unusual)


actors = mostly(st.just("admin"), st.sampled_from(["member", "receiver", "foreign"]), in_ten=9)
picks = st.integers(0, 59)  # an index into what the state offers (60: a multiple of every count up to 6)
strays = mostly(st.just(False), st.just(True), in_ten=8)  # True: anything, not just what the state makes sensible
account_picks = st.lists(picks, min_size=1, max_size=4)
scope_accounts = st.lists(st.sampled_from(["MA", *MEMBERS]), min_size=1, max_size=4, unique=True)  # at the start
scope_folders = mostly(st.lists(st.sampled_from(["ops", "eu", "sales", "ops", "eu", "sales", "root"]), min_size=1,
                                max_size=2, unique=True),
                       st.lists(st.sampled_from(ALL_FOLDERS), max_size=3, unique=True), in_ten=8)
scope_types = st.sampled_from([ACCOUNTS, FOLDERS])
kinds = mostly(st.just(COUPON), st.sampled_from(["savings_plan", "scu_package", "reserved_instance"]), in_ten=7)
rule_kinds = st.sampled_from([COUPON, COUPON, "savings_plan"])
owners = mostly(st.sampled_from(["MA", "A", "B", "C"]), st.sampled_from(["D", "X", "N", "O"]), in_ten=7)
validity = st.sampled_from(["valid", "valid", "valid", "upcoming", "short"])
face_values = st.sampled_from(["1.00", "3.00", "3.00", "50.00"])
coupon_products = st.sampled_from([(), (), ("ecs",), ("oss",)])
prices = st.sampled_from(["0.50", "1.00", "2.35", "7.00"])

SEEN: Counter = Counter()


def snapshot() -> tuple:
    """Everything a refused operation must leave as it was."""
    return (
        list(Grant.objects.order_by("pk").values_list("pk", "asset", "account", "effective_from", "effective_to")),
        list(AssetShare.objects.order_by("pk").values_list("asset", "account", "folder")),
        list(Asset.objects.order_by("pk").values_list("pk", "scope_type", "shared_at", "status", "remaining_value")),
        list(UncoveredAccount.objects.order_by("pk").values_list("asset", "account", "since")),
        list(AutoShareRule.objects.order_by("pk").values_list("asset_type", "scope_type", "enabled", "updated_at")),
        list(AutoShareRule.accounts.through.objects.order_by("pk").values_list("pk")),
        list(AutoShareRule.folders.through.objects.order_by("pk").values_list("pk")),
        list(Account.objects.order_by("pk").values_list("pk", "enterprise", "folder", "verified_company_id")),
        Invitation.objects.count(), AuditEvent.objects.count(),
    )


class SharingMachine(RuleBasedStateMachine):
    """Random section 7 operations on one enterprise, in step with ``SharingModel``."""

    def __init__(self):
        super().__init__()
        self.now = START
        self._patches = [mock.patch("django.utils.timezone.now", new=lambda: self.now),
                         mock.patch.object(sharing_selectors, "SHARE_LIMIT", LIMIT),
                         mock.patch.object(services, "SHARE_LIMIT", LIMIT)]
        for patch in self._patches:
            patch.start()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._records = itertools.count(1)
        self.model: SharingModel | None = None

    def teardown(self):
        try:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)
        finally:
            for patch in reversed(self._patches):
                patch.stop()

    # --- helpers ------------------------------------------------------------------------------

    def minutes(self, moment):
        """A moment as minutes after START: grants compare (and read) as small numbers."""
        return None if moment is None else int((moment - START).total_seconds() // 60)

    def expect(self, reasons: set, call, what: str):
        """Run the service ``call``: it must refuse exactly when the model refuses, for one of the model's reasons,
        with ``PermissionDenied`` exactly for a refusal of who the actor is, and then change nothing."""
        return driving.expect(reasons, call, what, seen=SEEN, snapshot=snapshot, reason_of=lambda exc: (
            exc.rule, DENIED if isinstance(exc, PermissionDenied) else REFUSED))

    def asset(self, key) -> Asset:
        return Asset.objects.get(pk=self.asset_pks[key])

    def pick_asset(self, pick, stray=True) -> str:
        """An asset: any (``stray``), else one the administrator can share (of a same-company account of E)."""
        keys = list(self.asset_pks)
        if not stray:
            keys = [k for k in keys if not self.model.assets[k].cancelled
                    and self.model.same_company_as_enterprise(self.model.assets[k].owner)
                    and self.model.accounts[self.model.assets[k].owner].enterprise == E] or keys
        return keys[pick % len(keys)]

    def pick_accounts(self, picks_, stray, *, exclude=()) -> list[str]:
        """Accounts: any (``stray``, and the list may be empty), else accounts now in E's directory."""
        keys = ALL if stray else [k for k in ALL if self.model.accounts[k].enterprise == E and k not in exclude]
        if not keys:
            return []
        chosen = [keys[p % len(keys)] for p in (picks_ if not stray else picks_[1:])]
        return list(dict.fromkeys(chosen))

    def check_over_limit_message(self, result):
        if isinstance(result, DomainError) and result.rule == "R-SH-4":
            assert f"reaches {self.model.over_limit_count} accounts" in result.message, result.message
            assert f"at most {LIMIT} accounts" in result.message, result.message

    # --- set-up -------------------------------------------------------------------------------

    @initialize(places=st.lists(st.sampled_from(E_FOLDERS), min_size=len(MEMBERS), max_size=len(MEMBERS)),
                first_rule=st.one_of(st.none(), st.tuples(scope_types, scope_accounts, scope_folders)),
                first_share=st.one_of(st.none(), st.tuples(scope_types, scope_accounts, scope_folders)))
    def build_enterprise(self, places, first_rule, first_share):
        """The directory, four coupons (of MA, A, X and O), and perhaps a coupon rule and a share of MA's coupon
        (so that sequences start from a shared state more often)."""
        enterprise, ma, admin = make_enterprise(name="Acme")
        other, o, foreign = make_enterprise(name="Other")
        root = Folder.objects.get(enterprise=enterprise, parent__isnull=True)
        ops = account_services.folder_create(actor=admin, parent=root, name="Ops")
        folders = {"root": root, "ops": ops, "eu": account_services.folder_create(actor=admin, parent=ops, name="EU"),
                   "sales": account_services.folder_create(actor=admin, parent=root, name="Sales"),
                   "other": Folder.objects.get(enterprise=other, parent__isnull=True)}
        accounts = {"MA": ma}
        for key, place in zip(MEMBERS, places):
            accounts[key] = make_account(enterprise=enterprise, folder=folders[place], name=key,
                                         company_id=OTHER_COMPANY if key == "X" else None)
        accounts["N"] = make_account(name="N", company_id=enterprise.company_id)
        accounts["O"] = o
        self.enterprise = enterprise
        self.companies = {E: enterprise.company_id, E2: other.company_id, "Z": OTHER_COMPANY}
        self.company_keys = {v: k for k, v in self.companies.items()}
        self.pks = {key: a.pk for key, a in accounts.items()}
        self.keys_by_pk = {pk: key for key, pk in self.pks.items()}
        self.folder_pks = {key: f.pk for key, f in folders.items()}
        self.folder_keys = {pk: key for key, pk in self.folder_pks.items()}
        self.enterprise_keys = {enterprise.pk: E, other.pk: E2}
        self.enterprise_pks = {E: enterprise.pk, E2: other.pk}
        self.users = {"admin": admin, "foreign": foreign, "member": make_user(account=accounts["A"]),
                      "receiver": make_user(account=accounts["B"], role=User.Role.ENTERPRISE_ADMIN)}
        self.account_users = {"A": self.users["member"], "B": self.users["receiver"],
                              **{k: make_user(account=accounts[k]) for k in ("C", "D", "X", "N")}}
        self.asset_pks: dict[str, int] = {}
        self.asset_keys: dict[int, str] = {}

        self.model = SharingModel(limit=LIMIT, enterprise_company={E: E, E2: E2})
        self.model.add_folder("root", enterprise=E)
        self.model.add_folder("ops", enterprise=E, parent="root")
        self.model.add_folder("eu", enterprise=E, parent="ops")
        self.model.add_folder("sales", enterprise=E, parent="root")
        self.model.add_folder("other", enterprise=E2)
        for key, account in accounts.items():
            account.refresh_from_db()
            self.model.add_account(key, account_id=account.account_id,
                                   enterprise=self.enterprise_keys.get(account.enterprise_id),
                                   folder=self.folder_keys.get(account.folder_id),
                                   company=self.company_keys[account.verified_company_id],
                                   management=account.is_management)
        if first_rule:
            self.set_rule(actor="admin", kind=COUPON, scope_type=first_rule[0], accounts=first_rule[1],
                          folders=first_rule[2], enabled=True)
        for owner, face_value in (("MA", "50.00"), ("A", "3.00"), ("X", "50.00"), ("O", "50.00")):
            self.provision(owner=owner, kind=COUPON, valid="valid", face_value=face_value, products=())
        if first_share:
            self.share("admin", "co1", first_share[0], accounts=first_share[1], folders=first_share[2])

    # --- sharing by asset id (R-SH-2, R-SH-4, R-SH-5, R-SH-7, R-SH-8) -------------------------------------

    def share(self, actor, key, scope_type, accounts=(), folders=()):
        accounts, folders = (accounts, ()) if scope_type == ACCOUNTS else ((), folders)
        chosen = {"accounts": accounts} if scope_type == ACCOUNTS else {"folders": folders}
        reasons = self.model.share(ACTORS[actor], key, scope_type, **chosen, at=self.now)
        counts = self.model.last_counts
        result = self.expect(reasons, lambda: services.share_asset(
            actor=self.users[actor], asset=self.asset(key), scope_type=scope_type,
            accounts=[self.pks[k] for k in accounts], folders=[self.folder_pks[f] for f in folders]),
            f"share({actor}, {key}, {scope_type}, {chosen})")
        self.check_over_limit_message(result)
        if not reasons:
            assert result == counts

    @rule(actor=actors, pick=picks, stray=strays, accounts=account_picks)
    def share_with_accounts(self, actor, pick, stray, accounts):
        self.share(actor, self.pick_asset(pick, stray), ACCOUNTS, accounts=self.pick_accounts(accounts, stray))

    @rule(actor=actors, pick=picks, stray=strays, folders=scope_folders)
    def share_with_folders(self, actor, pick, stray, folders):
        self.share(actor, self.pick_asset(pick, stray), FOLDERS, folders=folders)

    @rule(actor=actors, pick=picks, stray=strays)
    def unshare(self, actor, pick, stray):
        key = self.pick_asset(pick, stray)
        reasons = self.model.unshare(ACTORS[actor], key, at=self.now)
        result = self.expect(reasons, lambda: services.unshare_asset(actor=self.users[actor], asset=self.asset(key)),
                             f"unshare({actor}, {key})")
        if not reasons:
            assert result == self.model.last_counts

    # --- automatic sharing rules and provisioning (R-SH-3) ---------------------------------------------------

    @rule(actor=actors, kind=rule_kinds, stray=strays, accounts=account_picks, folders=scope_folders,
          scope_type=scope_types, enabled=mostly(st.just(True), st.just(False)))
    def set_rule_by_picks(self, actor, kind, stray, accounts, folders, scope_type, enabled):
        self.set_rule(actor, kind, scope_type, self.pick_accounts(accounts, stray), folders, enabled)

    def set_rule(self, actor, kind, scope_type, accounts, folders, enabled):
        chosen = {"accounts": accounts} if scope_type == ACCOUNTS else {"folders": folders}
        reasons = self.model.set_rule(ACTORS[actor], E, kind, scope_type, **chosen, enabled=enabled)
        result = self.expect(reasons, lambda: services.auto_rule_set(
            actor=self.users[actor], enterprise=self.enterprise, asset_type=KINDS[kind], scope_type=scope_type,
            accounts=[self.pks[k] for k in accounts] if scope_type == ACCOUNTS else (),
            folders=[self.folder_pks[f] for f in folders] if scope_type == FOLDERS else (), enabled=enabled),
            f"set_rule({actor}, {kind}, {scope_type}, {chosen}, enabled={enabled})")
        self.check_over_limit_message(result)

    @rule(owner=owners, kind=kinds, valid=validity, face_value=face_values, products=coupon_products)
    def provision(self, owner, kind, valid, face_value, products):
        valid_from = self.now - timedelta(days=1) if valid != "upcoming" else self.now + timedelta(hours=2)
        valid_to = self.now + timedelta(hours=3) if valid != "valid" else FAR
        key = f"{kind[:2]}{len(self.asset_pks) + 1}"
        self.model.provision(key, owner=owner, kind=kind, valid_from=valid_from, valid_to=valid_to, at=self.now,
                             products=products, face_value=Decimal(face_value))
        fields = {"face_value": face_value, "products": list(products)} if kind == COUPON else TYPED[kind]
        asset = services.asset_provision(actor=None, owner=Account.objects.get(pk=self.pks[owner]),
                                         asset_type=KINDS[kind], valid_from=valid_from, valid_to=valid_to, **fields)
        self.asset_pks[key] = asset.pk
        self.asset_keys[asset.pk] = key
        SEEN[("provision", "rule applied" if asset.scope_type != "none" else "no rule")] += 1

    @rule(pick=picks, now=st.sampled_from([False] * 5 + [True]))
    def cancel(self, pick, now):
        """Back office: an asset is cancelled, its grants end now (R-SH-7). Rare (``now``): a cancelled asset is
        out of the game."""
        if not now:
            return
        key = self.pick_asset(pick)
        self.model.cancel(key, at=self.now)
        services.asset_cancel(actor=None, asset=self.asset(key))
        SEEN[("cancel", "done")] += 1

    # --- the directory: folder scopes follow membership at once (R-ORG-4, R-SH-2, R-SH-4, R-SH-7) ----------

    @rule(actor=actors, stray=strays, accounts=st.lists(picks, min_size=1, max_size=3),
          folder=st.sampled_from(E_FOLDERS))
    def move(self, actor, stray, accounts, folder):
        accounts = self.pick_accounts(accounts, stray)
        reasons = self.model.move(ACTORS[actor], accounts, folder, at=self.now)
        self.expect(reasons, lambda: account_services.accounts_move(
            actor=self.users[actor], accounts=[self.pks[k] for k in accounts],
            folder=Folder.objects.get(pk=self.folder_pks[folder])), f"move({actor}, {accounts}, {folder})")

    @rule(pick=picks, who=picks)
    def move_into_a_shared_folder(self, pick, who):
        """Move an account into a folder of a folder-scoped asset: it receives the asset, or is left uncovered
        when the asset is full (R-SH-2, R-SH-4)."""
        scoped = sorted((a.key, f) for a in self.model.assets.values() if a.scope_type == FOLDERS
                        for f in sorted(a.scope_folders))
        if not scoped:
            return
        self.move("admin", False, [who], scoped[pick % len(scoped)][1])

    @rule(actor=actors, stray=strays, pick=picks)
    def remove(self, actor, stray, pick):
        key = (self.pick_accounts([pick], False, exclude={"MA"}) or ["MA"])[0] if not stray else ALL[pick % len(ALL)]
        reasons = self.model.remove(ACTORS[actor], key, at=self.now)
        self.expect(reasons, lambda: account_services.account_remove(
            actor=self.users[actor], account=Account.objects.get(pk=self.pks[key])), f"remove({actor}, {key})")

    @rule(actor=actors, pick=picks, stray=mostly(st.just(False), st.just(True), in_ten=9),
          folder=st.sampled_from(E_FOLDERS), accept=mostly(st.just(True), st.just(False), in_ten=9))
    def invite(self, actor, pick, stray, folder, accept):
        """The administrator invites an account that is in no directory (``stray``: any account); its user
        accepts (or declines) at once."""
        outside = [k for k in [*MEMBERS, "N"] if self.model.accounts[k].enterprise is None]
        key = outside[pick % len(outside)] if outside and not stray else ALL[pick % len(ALL)]
        reasons = self.model.invite(ACTORS[actor], E, key)
        invitation = self.expect(reasons, lambda: account_services.invitation_create(
            actor=self.users[actor], enterprise=self.enterprise,
            account_id=Account.objects.get(pk=self.pks[key]).account_id,
            folder=Folder.objects.get(pk=self.folder_pks[folder])), f"invite({actor}, {key}, {folder})")
        if reasons:
            return
        account_services.invitation_respond(actor=self.account_users[key], invitation=invitation, accept=accept)
        if accept:
            self.model.join(key, enterprise=E, folder=folder, at=self.now)
        SEEN[("invitation", "accepted" if accept else "declined")] += 1

    @rule(key=st.sampled_from(["MA", "A", "B", "C", "X"]), company=st.sampled_from([E, "Z"]))
    def reverify(self, key, company):
        """The account manager re-verifies an account's company; grants across companies end now (R-SH-5)."""
        self.model.reverify(key, company, at=self.now)
        account_services.account_flags_set(actor=None, account=Account.objects.get(pk=self.pks[key]),
                                           verified_company_id=self.companies[company])

    # --- time and usage (R-SH-6, R-SH-7, R-US-6) -------------------------------------------------------------

    @rule(minutes=st.sampled_from([1, 20, 45, 60, 60, 60, 120, 300]))
    def time_passes(self, minutes):
        self.now += timedelta(minutes=minutes)

    def usage_hours(self, key) -> list:
        """Hours worth rating for ``key``: those of its grants' starts and ends, the hours either side, and the
        last two."""
        floor = lambda t: t.replace(minute=0, second=0, microsecond=0)  # noqa: E731
        hours = {floor(self.now), floor(self.now) - timedelta(hours=1)}
        for asset in self.model.assets.values():
            for grant in (g for g in asset.grants if g.account == key):
                for moment in (grant.start, grant.end):
                    if moment is not None:
                        hours.update(floor(moment) + timedelta(hours=d) for d in (-1, 0, 1))
        return sorted(h for h in hours if START - timedelta(hours=2) <= h <= self.now)

    @rule(who=picks, stray=strays, pick=picks, price=prices,
          product=mostly(st.just("ecs"), st.just("rds")))
    def use(self, who, stray, pick, price, product):
        """A usage record at a usage hour, billed now, is rated: a shared coupon pays for it exactly when a grant
        interval of the account contains the hour (R-SH-6, R-SH-7), own coupons first (R-US-2, R-US-6).
        Mostly of an account that holds or held a grant (``stray``: any account)."""
        granted = sorted({g.account for a in self.model.assets.values() for g in a.grants})
        key = granted[who % len(granted)] if granted and not stray else ALL[who % len(ALL)]
        hours = self.usage_hours(key)
        hour = hours[pick % len(hours)]
        amount = Decimal(price)
        expected = self.model.rate(key, hour=hour, amount=amount, product=product)
        record = UsageRecord.objects.create(
            record_id=f"SM{next(self._records):08d}", account_id=self.pks[key], product_code=product,
            region="cn-hangzhou", quantity=Decimal(1), unit_price=amount, amount=amount, usage_hour=hour,
            billed_at=self.now, created_at=self.now)
        assert rating.rate_pending(record_ids=[record.pk]) == 1
        got = [(self.asset_keys[a] if a else None, value) for source, a, value in Deduction.objects.filter(
            usage_record=record).order_by("position").values_list("source", "asset", "amount")]
        assert got == expected, (f"use({key}, hour +{self.minutes(hour)}min, {amount}, {product}): "
                                 f"{got} != model {expected}")
        payers = {"balance" if a is None else "own" if self.model.assets[a].owner == key else "shared"
                  for a, _ in expected}
        SEEN[("use", tuple(sorted(payers)))] += 1

    # --- after every step ---------------------------------------------------------------------------

    @invariant()
    def everything_matches_the_model(self):
        if self.model is None:
            return
        model, m = self.model, self.minutes
        # Every grant, open or ended, with its exact effective from / to (R-SH-6, R-SH-7).
        got = Counter((self.asset_keys[a], self.keys_by_pk[acc], m(f), m(t)) for a, acc, f, t in
                      Grant.objects.values_list("asset", "account", "effective_from", "effective_to"))
        want = Counter((a, acc, m(f), m(t)) for a, acc, f, t in model.grants())
        assert got == want, f"grants: the services have {got - want} more, the model {want - got} more"
        # Each asset's scope, status and coupon value; scope members; uncovered accounts (R-SH-2, R-SH-4).
        rows = {self.asset_keys[pk]: row for pk, *row in Asset.objects.filter(pk__in=self.asset_pks.values())
                .values_list("pk", "scope_type", "status", "remaining_value")}
        members = {key: (set(), set()) for key in self.asset_pks}
        for a, acc, folder in AssetShare.objects.values_list("asset", "account", "folder"):
            if acc:
                members[self.asset_keys[a]][0].add(self.keys_by_pk[acc])
            else:
                members[self.asset_keys[a]][1].add(self.folder_keys[folder])
        uncovered = {(self.asset_keys[a], self.keys_by_pk[acc], m(since)) for a, acc, since in
                     UncoveredAccount.objects.values_list("asset", "account", "since")}
        assert uncovered == {(asset.key, acc, m(since)) for asset in model.assets.values()
                             for acc, since in asset.uncovered.items()}
        for key, asset in model.assets.items():
            assert rows[key] == [asset.scope_type, "cancelled" if asset.cancelled else "active", asset.remaining], key
            assert members[key] == (asset.scope_accounts, asset.scope_folders), key
        # The rules (R-SH-3).
        rules = {(E, r.asset_type): (r.scope_type, {self.keys_by_pk[a.pk] for a in r.accounts.all()},
                                     {self.folder_keys[f.pk] for f in r.folders.all()}, r.enabled)
                 for r in sharing_selectors.auto_rules(self.enterprise.pk).values()}
        assert rules == {(ent, KINDS[kind].value): (r.scope_type, r.accounts, r.folders, r.enabled)
                         for (ent, kind), r in model.rules.items()}
        # Every account: where it sits, its company, what rating billed it, and its coupon count (R-MON-3).
        accounts = {self.keys_by_pk[pk]: row for pk, *row in sharing_selectors.annotate_coupons(
            Account.objects.filter(pk__in=self.pks.values())).values_list(
            "pk", "enterprise", "folder", "verified_company_id", "outstanding_balance", "coupons")}
        for key, state in model.accounts.items():
            assert accounts[key] == [
                self.enterprise_pks.get(state.enterprise), self.folder_pks.get(state.folder),
                self.companies[state.company], model.outstanding[key],
                model.coupons(key, self.now)], key
        # The asset list of the console: accounts shared with and uncovered per coupon of the enterprise.
        listed = {self.asset_keys[a.pk]: (a.shared_count, a.uncovered_count) for a in sharing_selectors.asset_list(
            sharing_selectors.enterprise_assets(self.enterprise.pk), asset_type=AssetType.COUPON)}
        assert listed == {a.key: (len(a.open_grants()), len(a.uncovered)) for a in model.assets.values()
                          if a.kind == COUPON and model.accounts[a.owner].enterprise == E}
        # The rules themselves, whatever the model says: an asset is open to at most LIMIT accounts (R-SH-4), and
        # only to accounts of its owner's enterprise (R-SH-8) verified as the owner's company, which is the
        # enterprise's (R-SH-5, R-ORG-5).
        open_by_asset = Counter(a for a, _, _, t in got if t is None)
        assert max(open_by_asset.values(), default=0) <= LIMIT, open_by_asset
        for a, acc, _, t in got:
            if t is None:
                owner, receiver = model.accounts[model.assets[a].owner], model.accounts[acc]
                assert receiver.enterprise == owner.enterprise is not None, (a, acc)
                assert receiver.company == owner.company == model.enterprise_company[owner.enterprise], (a, acc)
        SEEN["state: an asset shared with the limit"] += any(len(a.open_grants()) == LIMIT
                                                             for a in model.assets.values())
        SEEN["state: an uncovered account"] += any(a.uncovered for a in model.assets.values())
        SEEN["state: an ended grant"] += any(g.end is not None for a in model.assets.values() for g in a.grants)


@pytest.mark.django_db
def test_sharing_matches_reference_model_R_SH_2_to_R_SH_8():
    """Random operation sequences of SPEC section 7: the services and the reference model agree on every grant
    (account, effective from, effective to), scope, uncovered account, rule and refusal after every step, and
    rating a usage record is paid by a shared coupon exactly when a grant interval contains its usage hour
    (R-SH-2 to R-SH-8, R-SH-6/R-SH-7 through R-US-2/R-US-6, R-MON-3 coupon count)."""
    SEEN.clear()
    run_state_machine_as_test(SharingMachine, settings=SETTINGS)
    for k, v in sorted(SEEN.items(), key=str):
        print(k, v)
