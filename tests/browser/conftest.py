"""Browser tests in real Chromium: Debian's /usr/bin/chromium driven by Playwright for Python.

Never a browser download: when /usr/bin/chromium is missing or cannot start, every browser test is skipped
with a message saying why (``make test`` installs it with apt when it can, ``scripts/ensure_chromium.sh``).

Each test gets a fresh demo enterprise (``accounts.demo.seed_demo``) on pytest-django's ``live_server``
(``transaction=True``: the server thread must see the committed rows). ``SCREENSHOTS=1`` writes the screens
into ``docs/screenshots/``; normal runs leave the files alone.
"""

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a thread with a running
# loop unless told that this is deliberate (the test's ORM reads and the live server are ordinary sync code).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 768}
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the whole session; skips (with the reason) when it is missing or fails to launch."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium); "
                    "no browser is ever downloaded")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - playwright is in requirements-dev.txt
        pytest.skip(f"browser tests need Playwright for Python: {exc}")
    manager = sync_playwright()
    playwright = manager.start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001 - any launch failure means: cannot run browser tests here
        manager.__exit__(None, None, None)
        pytest.skip(f"{CHROMIUM} failed to launch: {str(exc).splitlines()[0]}")
    yield browser
    browser.close()
    manager.__exit__(None, None, None)


def _new_context(browser, live_server, **options):
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, accept_downloads=True, **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def context(browser, live_server):
    ctx = _new_context(browser, live_server)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def nojs_page(browser, live_server):
    """A page in a context with JavaScript disabled: everything must work as plain HTML forms and links."""
    ctx = _new_context(browser, live_server, java_script_enabled=False)
    yield ctx.new_page()
    ctx.close()


@pytest.fixture
def demo(live_server, transactional_db):
    """The demo enterprise (Acme with 40 accounts, a pending credit contract, assets shared with folders) and
    its users admin, member, manager and globex, made through the services."""
    from accounts.demo import seed_demo

    return seed_demo(accounts=40)


def login(page, username: str) -> None:
    """Sign in through the real sign-in form, as a person does."""
    from accounts.demo import DEMO_PASSWORD

    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=who]")


def shot(page, name: str, *, locator=None) -> None:
    """A screenshot for the README, only with SCREENSHOTS=1 (the viewport, never a full long page)."""
    if os.environ.get("SCREENSHOTS") != "1":
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(150)  # let the drawer's slide-in transition finish
    (locator or page).screenshot(path=str(SCREENSHOT_DIR / name))


_MONEY = re.compile(r"-?[\d,]+\.\d{2}")


def money(text: str) -> Decimal:
    """A figure as the page shows it ("-1,234.50", "CNY 20.00") as a Decimal."""
    match = _MONEY.search(text.replace("\u2212", "-"))
    assert match, f"no money figure in {text!r}"
    return Decimal(match.group(0).replace(",", ""))


def mark_page(page) -> None:
    """Put a marker on ``window`` that a navigation (a full reload) would wipe out."""
    page.evaluate("window.__noReload = 'still here'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__noReload") == "still here", "the page was reloaded (a full navigation happened)"


def wait_for_htmx(page) -> None:
    """Wait until HTMX has no request in flight (it marks the elements it is requesting for)."""
    page.wait_for_function("document.querySelectorAll('.htmx-request').length === 0")
