"""The browser stage's fixtures: Debian's chromium (through chromedriver and selenium) drives the admin of the real
WordPress that wp-plugin/tests/run.sh started for the integration suite, against the real relay.

Nothing is faked but the far end of one channel: the relay is ``python -m relay serve`` on a temporary config with
this shop's site, a ``sandbox`` channel and a ``warehouse`` webhook channel whose receiver (a real HTTP server on
127.0.0.1, following the webhook channel's per-item answer contract) refuses the SKUs that start with ``DEAD-``, so a
test can make a dead letter on purpose. WordPress is prepared with its own functions through ``wp-state.php``.

Every test is checked after it runs, so the failure names the test that caused it: no JavaScript console error
(SEVERE) in the pages it opened, and no PHP notice, warning or database error in WordPress's debug.log written
meanwhile. A failing test leaves a screenshot and the page's HTML in the artefacts folder (``SRT_BROWSER_ARTIFACTS``,
which run.sh prints and keeps when the stage fails).

Waiting is always on state: on the DOM (WebDriverWait), or by reloading a page until it shows what it must, with
a generous deadline that only bounds a failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from relay.cli.client import SignedClient
from tests.procs import RelayProcess

HERE = Path(__file__).resolve().parent
SITE = "test-shop"
# Two valid secrets: the relay knows only the first; the second is a well-formed secret the relay refuses.
SITE_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(200, 232))).decode()
HOOK_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
DEADLINE = 20.0  # seconds: only ever the bound of a failure, never a wait
# What a PHP problem looks like in debug.log (error_log lines from PHP and from wpdb).
PHP_PROBLEM = re.compile(
    r"PHP (Fatal error|Parse error|Recoverable fatal error|Warning|Notice|Deprecated)|WordPress database error"
)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Remember each phase's outcome on the test, so its fixtures can tell whether it failed."""
    if call.when == "call":
        item.stash[FAILED] = call.excinfo is not None


FAILED = pytest.StashKey[bool]()


@dataclass(frozen=True)
class WordPress:
    url: str
    work: Path

    def state(self, *args: str) -> Any:
        """Run a wp-state.php command in WordPress (a PHP process of its own) and return its JSON answer."""
        done = subprocess.run(
            ["php", str(HERE / "wp-state.php"), *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"wp-state.php {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def shop_request(self, ops: list[list[Any]]) -> None:
        """One shop request through the integration harness (tests/integration/harness.php): the plugin captures
        the change and delivers it after the response, as on a live shop."""
        body = urllib.parse.urlencode({"action": "srt_ops", "ops": json.dumps(ops)}).encode()
        with urllib.request.urlopen(f"{self.url}/wp-admin/admin-ajax.php", body, timeout=60) as answer:
            doc = json.loads(answer.read())
        assert doc.get("ok") is True, doc

    def debug_log_size(self) -> int:
        log = self.work / "debug.log"
        return log.stat().st_size if log.exists() else 0

    def debug_log_since(self, offset: int) -> str:
        log = self.work / "debug.log"
        if not log.exists():
            return ""
        with log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")


@dataclass(frozen=True)
class Relay:
    url: str
    process: RelayProcess

    def _signed(self, operation: str, doc: dict[str, Any]) -> tuple[int, str]:
        async def call() -> tuple[int, str]:
            async with aiohttp.ClientSession() as session:
                client = SignedClient(self.url, SITE, SITE_SECRET, session)
                body, headers = client.encode({"site": SITE, **doc})
                url = f"{self.url}/v1/sites/{SITE}/{operation}"
                async with session.post(url, data=body, headers=headers) as response:
                    return response.status, await response.text()

        return asyncio.run(call())

    def state(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The relay's own view of every (channel, SKU), from its signed export (JSON Lines)."""
        status, text = self._signed("export", {"type": "export.request", "what": "state"})
        assert status == 200, text
        rows = [json.loads(line) for line in text.splitlines()[1:] if line]
        return {(row["channel"], row["sku"]): row for row in rows}


class Warehouse(ThreadingHTTPServer):
    """The ``warehouse`` channel's receiver: takes every update but those whose SKU starts with ``DEAD-``, which it
    refuses item by item (the webhook channel's ``results`` answer), so the relay makes them dead letters."""

    daemon_threads = True


class _WarehouseHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        results = [
            {"sku": u["sku"], "status": "rejected", "message": "This article number is not in the warehouse."}
            if u["sku"].startswith("DEAD-")
            else {"sku": u["sku"], "status": "ok"}
            for u in body.get("updates", [])
        ]
        answer = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture(scope="session")
def wordpress() -> WordPress:
    url, work = os.environ.get("SRT_WP_URL"), os.environ.get("SRT_WORK")
    if not url or not work or not os.environ.get("SRT_WP_CONFIG"):
        pytest.fail("the browser stage needs the WordPress started by wp-plugin/tests/run.sh (SRT_WP_URL, SRT_WORK)")
    return WordPress(url, Path(work))


@pytest.fixture(scope="session")
def artefacts() -> Path:
    path = Path(os.environ.get("SRT_BROWSER_ARTIFACTS") or tempfile.mkdtemp(prefix="stock-relay-browser-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def warehouse() -> Iterator[str]:
    server = Warehouse(("127.0.0.1", 0), _WarehouseHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stock"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def relay(warehouse: str, artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """The real relay, as a shop's operator runs it, on a temporary config and state directory."""
    folder = tmp_path_factory.mktemp("relay")
    config = {
        "state_dir": str(folder / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "shutdown_grace_seconds": 1,
        "dispatch": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "idle_poll_seconds": 0.1},
        "sites": {
            SITE: {
                "secret": "env:SRT_BROWSER_SITE_SECRET",
                "max_requests_per_second": 0,
                "channels": [
                    {"name": "sandbox", "type": "sandbox"},
                    {"name": "warehouse", "type": "webhook", "url": warehouse, "secret": "env:SRT_BROWSER_HOOK"},
                ],
            }
        },
    }
    path = folder / "relay.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"SRT_BROWSER_SITE_SECRET": SITE_SECRET, "SRT_BROWSER_HOOK": HOOK_SECRET}
    process = RelayProcess(path, env, folder / "relay.log")
    url = process.start()
    yield Relay(url, process)
    process.terminate()
    shutil.copy(folder / "relay.log", artefacts / "relay.log")  # removed by run.sh when the stage passes


@pytest.fixture(scope="session")
def _fresh_plugin(wordpress: WordPress) -> None:
    """Once: none of the integration suite's products or outbox rows, the plugin as just installed, and no update
    checks (offline-site.php: they fail on this offline site, with a PHP warning each)."""
    shutil.copy(HERE / "offline-site.php", wordpress.work / "wp-content" / "mu-plugins" / "offline-site.php")
    wordpress.state("fresh")


@pytest.fixture
def shop(wordpress: WordPress, relay: Relay, _fresh_plugin: None) -> WordPress:
    """Each test starts with the plugin configured for the relay (a test may change the settings)."""
    wordpress.state("configure", relay.url, SITE, SITE_SECRET)
    return wordpress


@pytest.fixture(scope="session")
def driver(artefacts: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.unhandled_prompt_behavior = "ignore"  # a confirm() stays open for the test to answer
    service = Service(
        executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver",
        log_output=str(artefacts / "chromedriver.log"),
    )
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


class Admin:
    """The WordPress admin as a shop owner uses it, with the waits every step needs."""

    def __init__(self, driver: webdriver.Chrome, wordpress: WordPress) -> None:
        self.driver = driver
        self.wordpress = wordpress

    def open(self, path: str) -> None:
        self.driver.get(self.wordpress.url + path)

    def open_settings(self) -> None:
        self.open("/wp-admin/admin.php?page=stock-relay")
        self.wait(lambda: self.driver.find_elements(By.ID, "stock_relay_url"), "the settings form")

    def wait(self, condition: Callable[[], Any], what: str) -> Any:
        # An element can go stale between finding and reading it while the page is replaced: that is "not yet".
        return WebDriverWait(
            self.driver, DEADLINE, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda _: condition(), f"timed out after {DEADLINE:.0f} s waiting for {what}")

    def reload_until(self, path: str, condition: Callable[[], Any], what: str) -> Any:
        """Load the page again until it shows what it must (state that another process changes)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            self.open(path)
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {DEADLINE:.0f} s reloading {path} until {what}")
            time.sleep(0.2)  # the poll interval of a wait on state, not a wait for it

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def notice_kind(self, containing: str) -> str:
        """The colour of that notice: success, warning, error or info (WordPress's notice-* class)."""
        classes = (self.notice(containing).get_attribute("class") or "").split()
        kinds = [
            c.removeprefix("notice-")
            for c in classes
            if c in ("notice-success", "notice-warning", "notice-error", "notice-info")
        ]
        return kinds[0] if kinds else "none"

    def notice(self, containing: str) -> WebElement:
        """The first admin notice whose text contains ``containing``, once the page shows it."""
        return self.wait(lambda: self.notices(containing), f"a notice saying {containing!r}")[0]

    def button(self, label: str) -> WebElement:
        literal = xpath_literal(label)
        found = self.driver.find_elements(
            By.XPATH, f"//input[@type='submit' and @value={literal}] | //button[normalize-space(.)={literal}]"
        )
        assert found, f"no {label!r} button on {self.driver.current_url}"
        return found[0]

    def press(self, label: str, reloads: bool = True) -> str | None:
        """Press a button; a confirmation the browser asks for (confirm(), opened by the click) is answered yes.
        Returns its question, or None when none was asked. ``reloads``: the button posts a form, so this waits
        until the page is replaced (otherwise a notice on the old page could be taken for the answer)."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        self.button(label).click()
        question = None
        with contextlib.suppress(NoAlertPresentException):
            alert = self.driver.switch_to.alert
            question = alert.text
            alert.accept()
        if reloads:
            self.wait(lambda: not is_attached(page), f"the page to reload after {label!r}")
        return question

    def settled(self) -> None:
        """No loading indicator (WordPress's spinner) left on the page: what loads after it has arrived."""
        self.wait(lambda: not self.driver.find_elements(By.CSS_SELECTOR, ".spinner.is-active"), "the page to load")

    def notices(self, containing: str) -> list[WebElement]:
        xpath = f"//div[contains(concat(' ', @class, ' '), ' notice ')][contains(., {xpath_literal(containing)})]"
        return self.driver.find_elements(By.XPATH, xpath)

    def fill(self, field_id: str, value: str) -> None:
        field = self.driver.find_element(By.ID, field_id)
        field.clear()
        field.send_keys(value)

    def cell_rows(self) -> list[list[str]]:
        """Every table row on the page as the text of its cells."""
        rows = self.driver.find_elements(By.CSS_SELECTOR, "table tr")
        return [[cell.text.strip() for cell in row.find_elements(By.CSS_SELECTOR, "th, td")] for row in rows]


def is_attached(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return False
    return True


def xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    parts = text.split("'")
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in parts) + ")"


@pytest.fixture(scope="session")
def _logged_in(driver: webdriver.Chrome, wordpress: WordPress) -> None:
    """Log in once, through wp-login.php, as the integration suite's administrator (tests/integration/install.php)."""
    driver.get(wordpress.url + "/wp-login.php")
    WebDriverWait(driver, DEADLINE).until(lambda d: d.find_elements(By.ID, "user_login"), "the login form")
    WebDriverWait(driver, DEADLINE).until(_login_filled_in, "the login form filled in")
    driver.find_element(By.ID, "wp-submit").click()
    WebDriverWait(driver, DEADLINE).until(lambda d: d.find_elements(By.ID, "wpadminbar"), "the dashboard after login")


LOGIN = (("user_login", "admin"), ("user_pass", "admin-password"))


def _login_filled_in(driver: webdriver.Chrome) -> bool:
    """Type the credentials into whichever field does not hold them yet; true once a look finds both right.

    wp-login.php focuses and selects the user name field on a 200 ms timer (wp_attempt_focus): when that fires while
    the password is being typed, the rest of the password replaces the user name, and the login fails. So the fields
    are read back, not trusted, and retyped until they hold what was typed."""
    wrong = [(field_id, value) for field_id, value in LOGIN if field_value(driver, field_id) != value]
    for field_id, value in wrong:
        field = driver.find_element(By.ID, field_id)
        field.clear()
        field.send_keys(value)
    return not wrong


def field_value(driver: webdriver.Chrome, field_id: str) -> str:
    return str(driver.find_element(By.ID, field_id).get_attribute("value") or "")


@pytest.fixture
def admin(
    request: pytest.FixtureRequest,
    driver: webdriver.Chrome,
    shop: WordPress,
    artefacts: Path,
    _logged_in: None,
) -> Iterator[Admin]:
    """The logged-in admin; afterwards the test's console errors and PHP problems fail it, and a failure is kept."""
    driver.get_log("browser")  # what earlier tests left is theirs
    offset = shop.debug_log_size()
    yield Admin(driver, shop)
    problems: list[str] = []
    try:
        problems += [f"console: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    except WebDriverException as error:  # e.g. a dialog still open
        problems.append(f"console log unreadable: {error.msg}")
    problems += [f"debug.log: {line}" for line in shop.debug_log_since(offset).splitlines() if php_problem(line)]
    if request.node.stash.get(FAILED, False) or problems:
        keep(driver, artefacts, request.node.name)
    assert not problems, "\n".join(problems)


def php_problem(line: str) -> bool:
    """A PHP problem of the plugin's, or any notice, warning or error. WordPress 6.1's own deprecations under PHP 8.1+
    (the return types of its Requests library) are left out: they are core's, logged on any request
    that makes an HTTP call, and nothing the plugin can change."""
    if not PHP_PROBLEM.search(line):
        return False
    core = os.environ.get("SRT_ABSPATH", "")
    return not ("PHP Deprecated:" in line and core != "" and f" in {core.rstrip('/')}/wp-includes/" in line)


def keep(driver: webdriver.Chrome, artefacts: Path, name: str) -> None:
    """A screenshot and the HTML of the page the test ended on."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    with contextlib.suppress(NoAlertPresentException):
        driver.switch_to.alert.dismiss()
    driver.save_screenshot(str(artefacts / f"{stem}.png"))
    (artefacts / f"{stem}.html").write_text(driver.page_source)
