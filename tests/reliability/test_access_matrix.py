"""Who may do what, over EVERY URL of the site (issue 5, Reliability 5; R-ORG-6).

The URLs come from the URL resolver, so a new view cannot be forgotten: ``test_every_url_has_an_entry`` fails for
a URL without a row in ``TABLE`` (or with a stale one). Each row gives the expected status for GET and for POST
for five roles: anonymous, a member user of enterprise A, A's administrator, B's administrator, and an account
manager (staff). URL arguments and query strings point at A's objects (an account of A that is not the member's
own, A's folder, asset, contract and message). Besides the status:

- B's administrator never gets A's data in the body (A's account names and ids, folder, asset, message...),
- a member user never gets the other accounts' data,
- a POST by anybody but A's administrator changes nothing in the database (except the member marking its own
  messages read),
- every POST without a CSRF token is refused with 403 and changes nothing.

The back office (``/backoffice/``, Django's admin site) is covered by a rule: staff only.
"""

import re
from dataclasses import dataclass, field
from typing import Callable

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from .conftest import body_text, diff, snapshot

ROLES = ("anon", "member", "admin_a", "admin_b", "manager")
L = "login"  # a redirect to the sign-in page
FORBIDDEN = 403


def walk(patterns=None, namespace="", prefix=""):
    """(key, full route) of every URL pattern, recursively: the key is the namespaced name, or for an unnamed
    pattern its namespace and full route."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            ns = ":".join(x for x in (namespace, pattern.namespace) if x) if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, ns, route)
        elif isinstance(pattern, URLPattern):
            name = pattern.name or route
            yield (f"{namespace}:{name}" if namespace else name), route


@dataclass
class Entry:
    url: Callable
    get: tuple
    post: tuple
    data: Callable = field(default=lambda w: {})
    member_may_change: bool = False  # a POST by the member of A may change its own state

    def expected(self, method, role):
        return dict(zip(ROLES, self.get if method == "GET" else self.post))[role]


def r(name, *args, query=""):
    return lambda w: reverse(name, args=[a(w) for a in args]) + (f"?{query(w)}" if query else "")


def pk(attr):
    return lambda w: getattr(w, attr).pk


ONLY_SIGNED_IN = (L, 200, 200, 200, 200)
NO_POST = (L, 405, 405, 405, 405)
ADMIN_POST_ONLY_GET = (L, FORBIDDEN, 405, 405, FORBIDDEN)  # an administrator's POST-only action, opened with GET

TABLE = {
    # Sign-in and sign-out.
    "login": Entry(url=r("login"), get=(200, 302, 302, 302, 302), post=(200, 302, 302, 302, 302),
                   data=lambda w: {"username": w.admin_a.username, "password": "wrong"}),
    "logout": Entry(url=r("logout"), get=(405,) * 5, post=(302,) * 5, member_may_change=True),
    # The console pages. Query strings name A's objects: B's administrator gets nothing of them.
    "console:overview": Entry(url=r("console:overview"), get=ONLY_SIGNED_IN, post=NO_POST),
    "console:accounts": Entry(url=r("console:accounts", query=lambda w: f"folder={w.hidden.pk}"),
                              get=(L, 200, 200, 200, FORBIDDEN), post=NO_POST),
    "console:accounts_export": Entry(url=r("console:accounts_export", query=lambda w: f"folder={w.hidden.pk}"),
                                     get=(L, 200, 200, 200, FORBIDDEN), post=NO_POST),
    "console:account_detail": Entry(url=r("console:account_detail", pk("secret")),
                                    get=(L, 404, 200, 404, FORBIDDEN), post=NO_POST),
    "console:credit_drawer": Entry(url=r("console:credit_drawer", pk("secret")),
                                   get=(L, FORBIDDEN, 200, 404, FORBIDDEN), post=(L, FORBIDDEN, 200, 404, FORBIDDEN),
                                   data=lambda w: {"new_limit": "", "idempotency_key": "k-credit"}),
    "console:transfer_drawer": Entry(url=r("console:transfer_drawer", pk("secret")),
                                     get=(L, FORBIDDEN, 200, 404, FORBIDDEN), post=(L, FORBIDDEN, 200, 404, FORBIDDEN),
                                     data=lambda w: {"type": "transfer", "step": "confirm", "payer": w.ma.pk,
                                                     "amount": "", "remark": "x", "idempotency_key": "k-transfer"}),
    "console:transfer_records_drawer": Entry(url=r("console:transfer_records_drawer", pk("secret")),
                                             get=(L, 404, 200, 404, 404), post=NO_POST),
    "console:alert_drawer": Entry(url=r("console:alert_drawer", pk("secret")),
                                  get=(L, FORBIDDEN, 200, 404, FORBIDDEN), post=(L, FORBIDDEN, 200, 404, FORBIDDEN),
                                  data=lambda w: {"enabled": "on", "threshold": ""}),
    "console:alert_batch": Entry(url=r("console:alert_batch", query=lambda w: f"accounts={w.secret.pk}"),
                                 get=(L, FORBIDDEN, 200, 404, FORBIDDEN), post=(L, FORBIDDEN, 200, 404, FORBIDDEN),
                                 data=lambda w: {"accounts": [w.secret.pk], "enabled": "on", "threshold": ""}),
    "console:transfer_records": Entry(url=r("console:transfer_records", query=lambda w: f"account={w.secret.pk}"),
                                      get=(L, 200, 200, 404, 200), post=NO_POST),
    "console:credit_control": Entry(url=r("console:credit_control", query=lambda w: f"account={w.secret.pk}"),
                                    get=(L, 200, 200, 404, 200), post=NO_POST),
    "console:contracts": Entry(url=r("console:contracts", query=lambda w: f"confirm={w.contract.pk}"),
                               get=ONLY_SIGNED_IN, post=(L, FORBIDDEN, 303, 404, FORBIDDEN),
                               data=lambda w: {"contract": w.contract.pk}),
    "console:messages": Entry(url=r("console:messages"), get=ONLY_SIGNED_IN, post=(L, 404, 404, 404, 404),
                              data=lambda w: {"message": w.message.pk}),
    "console:audit_log": Entry(url=r("console:audit_log"), get=(L, FORBIDDEN, 200, 200, FORBIDDEN), post=NO_POST),
    # Equity asset sharing and the resource directory.
    "sharing:index": Entry(url=r("sharing:index", query=lambda w: f"q={w.coupon.asset_id[:4]}"),
                           get=ONLY_SIGNED_IN, post=NO_POST),
    "sharing:assets": Entry(url=r("sharing:assets", lambda w: "coupon"), get=ONLY_SIGNED_IN, post=NO_POST),
    "sharing:share_drawer": Entry(url=r("sharing:share_drawer", pk("coupon")),
                                  get=(L, FORBIDDEN, 200, 404, FORBIDDEN), post=(L, FORBIDDEN, 302, 404, FORBIDDEN),
                                  data=lambda w: {"scope_type": "accounts", "accounts": [w.own.pk],
                                                  "action": "share"}),
    "sharing:unshare": Entry(url=r("sharing:unshare", pk("coupon")), get=ADMIN_POST_ONLY_GET,
                             post=(L, FORBIDDEN, 302, 404, FORBIDDEN)),
    "sharing:history_drawer": Entry(url=r("sharing:history_drawer", pk("coupon")),
                                    get=(L, FORBIDDEN, 200, 404, FORBIDDEN), post=(L, FORBIDDEN, 405, 405, FORBIDDEN)),
    "sharing:rules": Entry(url=r("sharing:rules"), get=(L, FORBIDDEN, 200, 200, FORBIDDEN),
                           post=(L, FORBIDDEN, 302, 200, FORBIDDEN),
                           data=lambda w: {"asset_type": "coupon", "scope_type": "accounts", "enabled": "on",
                                           "account_ids": w.secret.account_id, "folders": [w.hidden.pk]}),
    "sharing:usage_import": Entry(url=r("sharing:usage_import"), get=(L, FORBIDDEN, 200, 200, FORBIDDEN),
                                  post=(L, FORBIDDEN, 200, 200, FORBIDDEN)),
    "sharing:directory": Entry(url=r("sharing:directory", query=lambda w: f"folder={w.hidden.pk}"),
                               get=(L, FORBIDDEN, 200, 404, FORBIDDEN), post=(L, FORBIDDEN, 405, 405, FORBIDDEN)),
    "sharing:folder_create": Entry(url=r("sharing:folder_create"), get=ADMIN_POST_ONLY_GET,
                                   post=(L, FORBIDDEN, 302, 404, FORBIDDEN),
                                   data=lambda w: {"parent": w.hidden.pk, "name": "New One"}),
    "sharing:folder_rename": Entry(url=r("sharing:folder_rename", pk("hidden")), get=ADMIN_POST_ONLY_GET,
                                   post=(L, FORBIDDEN, 302, 404, FORBIDDEN), data=lambda w: {"name": "Renamed"}),
    "sharing:folder_delete": Entry(url=r("sharing:folder_delete", pk("hidden")), get=ADMIN_POST_ONLY_GET,
                                   post=(L, FORBIDDEN, 302, 404, FORBIDDEN)),
    "sharing:accounts_move": Entry(url=r("sharing:accounts_move"), get=ADMIN_POST_ONLY_GET,
                                   post=(L, FORBIDDEN, 302, 404, FORBIDDEN),
                                   data=lambda w: {"folder": w.hidden.pk, "accounts": [w.own.pk]}),
    "sharing:invite": Entry(url=r("sharing:invite"), get=ADMIN_POST_ONLY_GET, post=(L, FORBIDDEN, 302, 404, FORBIDDEN),
                            data=lambda w: {"account_id": w.b_account.account_id, "folder": w.hidden.pk}),
    "sharing:account_remove": Entry(url=r("sharing:account_remove", pk("secret")), get=ADMIN_POST_ONLY_GET,
                                    post=(L, FORBIDDEN, 302, 404, FORBIDDEN)),
}

ALL_URLS = list(walk())
SITE_URLS = [name for name, route in ALL_URLS if not name.startswith("admin:")]
ADMIN_URLS = [(name, route) for name, route in ALL_URLS if name.startswith("admin:")]


def test_every_url_has_an_entry():
    """A URL added to the site without a row here fails this test (and a row without a URL too)."""
    missing = [name for name in SITE_URLS if name not in TABLE]
    assert not missing, f"URLs without an entry in the access table: {missing}"
    stale = [name for name in TABLE if name not in SITE_URLS]
    assert not stale, f"Entries for URLs that no longer exist: {stale}"
    assert ADMIN_URLS, "the back office URLs are found too"
    assert all(route.startswith("backoffice/") for _, route in ADMIN_URLS)


def user_of(world, role):
    return {"anon": None, "member": world.member, "admin_a": world.admin_a, "admin_b": world.admin_b,
            "manager": world.manager}[role]


def check_status(response, expected, url):
    if expected == L:
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith(reverse("login") + "?next="), response["Location"]
    else:
        assert response.status_code == expected, (url, response.status_code, expected)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name", sorted(TABLE))
def test_access_R_ORG_6(client, world, name, method, role):
    entry = TABLE[name]
    user = user_of(world, role)
    if user is not None:
        client.force_login(user)
    url = entry.url(world)
    before = snapshot()
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, entry.data(world))
    check_status(response, entry.expected(method, role), url)
    body = body_text(response)
    sent = url + repr(entry.data(world)) if method == "POST" else url  # echoing the request is no leak
    if role == "admin_b":
        leaked = [s for s in world.secrets_of_a if s.encode() in body and s not in sent]
        assert not leaked, f"B's administrator got A's data at {url}: {leaked}"
    if role == "member":
        leaked = [s for s in world.secrets_of_others if s.encode() in body and s not in sent]
        assert not leaked, f"A member user got another account's data at {url}: {leaked}"
    may_change = role == "admin_a" or (role == "member" and entry.member_may_change)
    if method == "POST" and not may_change:
        assert diff(before, snapshot()) == [], f"{role} changed the database with POST {url}"


# --- CSRF ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_post_without_a_csrf_token_is_refused_and_changes_nothing(world, name):
    """With CSRF checks on, a POST without the token is 403 for every role, and nothing changes."""
    entry = TABLE[name]
    for role in ROLES:
        client = Client(enforce_csrf_checks=True)
        user = user_of(world, role)
        if user is not None:
            client.force_login(user)
        before = snapshot()
        response = client.post(entry.url(world), entry.data(world))
        assert response.status_code == 403, (name, role, response.status_code)
        assert diff(before, snapshot()) == [], (name, role)


def test_a_post_with_the_csrf_token_is_accepted(world):
    """The control of the test above: the same client with the page's token gets through."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.admin_a)
    client.get(reverse("console:alert_drawer", args=[world.secret.pk]))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("console:alert_drawer", args=[world.secret.pk]),
                           {"enabled": "on", "threshold": "10.00", "csrfmiddlewaretoken": token})
    assert response.status_code == 303
    world.secret.refresh_from_db()
    assert world.secret.alert_enabled


# --- The back office: staff only ----------------------------------------------------------------------------

def admin_url(world, route) -> str:
    """A back office URL from its route, with real arguments: an app, a content type, an object of the model."""
    url = re.sub(r"\(\?P<app_label>[^)]*\)", "accounts", route)
    url = url.replace("(?P<url>.*)", "no-such-page/").replace("^", "").replace("$", "")
    url = re.sub(r"<\w+:content_type_id>", str(ContentType.objects.get_for_model(world.secret).pk), url)
    if re.search(r"<(\w+:)?(object_id|pk|id)>", url):
        if "/r/" in "/" + url:
            obj = world.secret
        else:
            app_label, model_name = url.split("/")[1:3]
            obj = apps.get_model(app_label, model_name).objects.order_by("pk").first()
        url = re.sub(r"<(\w+:)?(object_id|pk|id)>", str(obj.pk if obj is not None else 1), url)
    assert "<" not in url and "(" not in url, url
    return "/" + url


@pytest.mark.parametrize("role", ["anon", "member", "admin_a", "admin_b"])
def test_the_back_office_is_for_staff_only_R_ORG_6(client, world, role):
    """Every back office URL sends a non-staff user to the back office sign-in (GET and POST), changing nothing."""
    user = user_of(world, role)
    if user is not None:
        client.force_login(user)
    login = reverse("admin:login")
    wrong = []
    before = snapshot()
    for name, route in ADMIN_URLS:
        url = admin_url(world, route)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            if name == "admin:login":
                ok = response.status_code == 200
            elif name == "admin:logout":
                ok = response.status_code in (405, 302) if method == "get" else response.status_code in (200, 302)
            else:
                ok = response.status_code == 302 and response["Location"].startswith(login)
            if not ok:
                wrong.append((method, url, response.status_code))
            if role == "admin_b" or role == "member":
                leaked = [s for s in world.secrets_of_a if s.encode() in body_text(response)]
                assert not leaked, (url, leaked)
        if name == "admin:logout" and user is not None:
            client.force_login(user)
    assert not wrong, wrong
    assert diff(before, snapshot()) == []


@pytest.mark.parametrize("superuser", [False, True])
def test_the_account_manager_uses_the_back_office_without_errors_R_ORG_6(client, world, superuser):
    """Staff get every back office page (or a plain refusal), never a server error or the sign-in page; a
    superuser (the back office tests' account manager) gets every page rendered."""
    world.manager.is_superuser = superuser
    world.manager.save()
    client.force_login(world.manager)
    wrong = []
    for name, route in ADMIN_URLS:
        if name == "admin:logout":
            continue
        url = admin_url(world, route)
        response = client.get(url)
        if response.status_code >= 500 or response.get("Location", "").startswith(reverse("admin:login")):
            wrong.append((url, response.status_code))
    assert not wrong, wrong
