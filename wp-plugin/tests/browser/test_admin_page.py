"""WooCommerce › Stock Relay in a real browser, as a shop owner uses it: settings kept or refused, the relay's status,
Test connection and every action button, against the real relay. Each test is also checked for JavaScript console
errors and PHP notices (conftest.py).

The assertions hold for what the page must do, not how it is built: the status may be rendered with the page or
loaded afterwards by JavaScript (the tests wait on the DOM either way), and a button that asks for confirmation is
answered yes.
"""

from __future__ import annotations

import re

import pytest
from selenium.webdriver.common.by import By

from .conftest import OTHER_SECRET, SITE, SITE_SECRET, Admin, Relay

PAGE = "/wp-admin/admin.php?page=stock-relay"


def channel_names(admin: Admin) -> set[str]:
    """The channel names in the page's tables (first cell of a row), once the relay's status is shown."""
    return {row[0] for row in admin.cell_rows() if row} & {"sandbox", "warehouse"}


def assert_saved(admin: Admin, url: str) -> None:
    """WordPress has saved this URL, the site id and the relay's secret (compared, never printed)."""
    saved = admin.wordpress.state("settings")
    assert (saved["url"], saved["site"]) == (url, SITE)
    same = saved["secret"] == SITE_SECRET
    assert same, "the saved secret is not the relay's"


def test_the_page_shows_the_relays_channels_and_never_the_secret(admin: Admin) -> None:
    admin.open_settings()
    assert admin.driver.find_element(By.TAG_NAME, "h1").text == "Stock Relay"
    admin.wait(lambda: channel_names(admin) == {"sandbox", "warehouse"}, "both channels in the relay's status")
    assert "circuit" not in admin.text().lower(), "the relay's jargon on the page"
    shown = SITE_SECRET[6:] in admin.driver.page_source  # a boolean: a failure must not print the secret either
    assert not shown, "the saved secret is in the page"


def test_good_settings_are_saved_and_kept(admin: Admin, relay: Relay) -> None:
    """A secret the relay does not know is replaced through the form; the status then loads with the new one."""
    admin.wordpress.state("configure", "https://relay.invalid", "other-shop", OTHER_SECRET)
    admin.open_settings()
    admin.fill("stock_relay_url", relay.url + "/")
    admin.fill("stock_relay_site", SITE)
    admin.fill("stock_relay_secret", SITE_SECRET)
    admin.press("Save settings")
    assert admin.notice_kind("Settings saved.") == "success"
    admin.wait(lambda: channel_names(admin) == {"sandbox", "warehouse"}, "the relay's status with the saved settings")
    assert admin.driver.find_element(By.ID, "stock_relay_url").get_attribute("value") == relay.url
    assert admin.driver.find_element(By.ID, "stock_relay_site").get_attribute("value") == SITE
    assert admin.driver.find_element(By.ID, "stock_relay_secret").get_attribute("value") == "", "the secret is shown"
    assert_saved(admin, relay.url)


@pytest.mark.parametrize(
    "bad_url",
    [
        "ftp://relay.example.com",  # not http(s)
        "http://relay.example.com",  # plain http to a public host
        "https://relay.example.com/v1/sites/test-shop",  # the API path, a known mistake
    ],
)
def test_a_bad_url_is_refused_and_what_was_typed_stays_in_the_form(admin: Admin, relay: Relay, bad_url: str) -> None:
    admin.open_settings()
    admin.fill("stock_relay_url", bad_url)
    admin.fill("stock_relay_site", "second-shop")
    admin.press("Save settings")
    # WordPress's own id for the field's settings error (add_settings_error's code), not any error on the page.
    error = admin.wait(lambda: admin.driver.find_elements(By.ID, "setting-error-stock_relay_url"), "the URL's error")[0]
    assert "notice-error" in (error.get_attribute("class") or ""), error.get_attribute("class")
    assert admin.wordpress.state("settings")["url"] == relay.url
    assert admin.driver.find_element(By.ID, "stock_relay_url").get_attribute("value") == bad_url
    assert admin.driver.find_element(By.ID, "stock_relay_site").get_attribute("value") == "second-shop"


def test_a_bad_secret_is_refused_and_the_saved_one_is_kept(admin: Admin, relay: Relay) -> None:
    admin.open_settings()
    admin.fill("stock_relay_secret", "whsec_c2hvcnQ=")
    admin.press("Save settings")
    assert admin.notice_kind("secret") == "error"
    assert_saved(admin, relay.url)
    admin.open_settings()
    admin.wait(lambda: channel_names(admin) == {"sandbox", "warehouse"}, "the status, signed with the kept secret")


def test_two_secrets_pasted_during_a_rotation_are_saved(admin: Admin) -> None:
    admin.open_settings()
    admin.fill("stock_relay_secret", f"{OTHER_SECRET} {SITE_SECRET}")
    admin.press("Save settings")
    admin.notice("Settings saved.")
    admin.notice("Several secrets are saved")
    admin.wait(lambda: channel_names(admin) == {"sandbox", "warehouse"}, "the status, signed with both secrets")


def test_capital_letters_in_the_site_id_reach_the_server_and_are_saved_small(admin: Admin, relay: Relay) -> None:
    """Only a browser applies the field's pattern: it must not block what the server accepts."""
    admin.open_settings()
    admin.fill("stock_relay_site", "Test-Shop")
    admin.press("Save settings")
    admin.notice("Settings saved.")
    assert_saved(admin, relay.url)


def test_an_unconfigured_plugin_says_so_and_a_first_save_without_a_secret_is_refused(
    admin: Admin, relay: Relay
) -> None:
    admin.wordpress.state("configure", "", "", "")
    admin.open_settings()
    assert admin.notice_kind("not set up yet") == "warning"
    admin.fill("stock_relay_url", relay.url)
    admin.fill("stock_relay_site", SITE)
    admin.press("Save settings")
    assert admin.notice_kind("Paste the secret") == "error"


def test_test_connection_shows_the_relays_answer(admin: Admin) -> None:
    admin.open_settings()
    admin.press("Test connection", reloads=False)  # the page's script asks; without it, the form reloads the page
    notice = admin.notice("Connected")
    assert "sandbox" in notice.text and "warehouse" in notice.text, notice.text
    assert admin.notice_kind("Connected") == "success"


def test_test_connection_says_when_the_relay_cannot_be_reached(admin: Admin, relay: Relay) -> None:
    closed = relay.url.rsplit(":", 1)[0] + ":9"  # the discard port: nothing listens there
    admin.wordpress.state("configure", closed, SITE, SITE_SECRET)
    admin.open_settings()
    admin.settled()  # the relay's status, loaded after the page, says the same: the answer is one more notice
    before = len(admin.notices("could not be reached"))
    admin.press("Test connection", reloads=False)
    answer = admin.wait(lambda: admin.notices("could not be reached")[before:], "Test connection's answer")[0]
    assert "Connected" not in answer.text
    assert "notice-error" in (answer.get_attribute("class") or ""), answer.get_attribute("class")


def test_replay_with_the_relay_unreachable_promises_nothing(admin: Admin, relay: Relay) -> None:
    """A replay is a one-off request: nothing is kept to be resent when the relay does not answer."""
    closed = relay.url.rsplit(":", 1)[0] + ":9"
    admin.wordpress.state("configure", closed, SITE, SITE_SECRET)
    admin.open_settings()
    admin.press("Replay dead letters")
    notice = admin.notice("could not be reached")  # the first: the action's answer is above the status
    assert "resent" not in notice.text and "kept" not in notice.text, notice.text
    assert "notice-error" in (notice.get_attribute("class") or ""), notice.get_attribute("class")


def test_resend_everything_sends_every_product_to_every_channel(admin: Admin, relay: Relay) -> None:
    ids = {
        sku: admin.wordpress.state("product", sku, str(qty))["id"] for sku, qty in (("RESEND-1", 4), ("RESEND-2", 0))
    }
    assert len(ids) == 2
    admin.open_settings()
    assert admin.press("Resend everything"), "Resend everything ran without asking"
    admin.wait(lambda: re.search(r"\b(\d+) of \1 queued", admin.text()), "the resend to finish")

    def delivered() -> bool:
        state = relay.state()
        return all(
            state.get((channel, sku), {}).get("shows") == qty
            for channel in ("sandbox", "warehouse")
            for sku, qty in (("RESEND-1", 4), ("RESEND-2", 0))
        )

    admin.wait(delivered, "both products on both channels")


def test_refused_changes_are_listed_escaped_queued_again_and_removed(admin: Admin) -> None:
    """The relay refuses a quantity beyond its range; the SKU is hostile markup, which must stay text."""
    sku = 'REFUSED-<img src=x onerror="document.body.dataset.srtXss=1">'
    product = admin.wordpress.state("product", sku, "5")["id"]
    admin.wordpress.shop_request([["set_stock", product, 2_000_000_000]])

    def listed() -> bool:
        return any(sku in row for row in admin.cell_rows())

    admin.reload_until(PAGE, listed, "the refused change is listed")
    assert admin.driver.execute_script("return document.body.dataset.srtXss") is None
    assert admin.press("Queue refused changes again") is None
    admin.notice("1 refused change queued again")
    admin.reload_until(PAGE, listed, "the relay refuses it again")
    assert admin.press("Remove refused changes"), "Remove refused changes ran without asking"
    admin.notice("1 refused change removed")
    admin.open_settings()
    assert not listed()
    buttons = [b.get_attribute("value") for b in admin.driver.find_elements(By.CSS_SELECTOR, "input[type=submit]")]
    assert "Remove refused changes" not in buttons and "Queue refused changes again" not in buttons, buttons


def test_replay_dead_letters_has_the_relay_send_them_again(admin: Admin, relay: Relay) -> None:
    product = admin.wordpress.state("product", "DEAD-1", "3")["id"]
    admin.wordpress.shop_request([["set_stock", product, 2]])
    admin.wait(lambda: relay.state().get(("warehouse", "DEAD-1"), {}).get("state") == "dead", "a dead letter")
    admin.open_settings()
    admin.press("Replay dead letters")
    admin.notice("1 dead letter again")


def test_the_products_screen_loads_cleanly(admin: Admin) -> None:
    admin.wordpress.state("product", "LISTED-1", "7")
    admin.open("/wp-admin/edit.php?post_type=product")
    admin.wait(lambda: "Browser test LISTED-1" in admin.text(), "the Products list")


def test_the_plugins_screen_links_to_the_settings(admin: Admin) -> None:
    admin.open("/wp-admin/plugins.php")
    links = admin.wait(
        lambda: admin.driver.find_elements(By.CSS_SELECTOR, "tr[data-slug='stock-relay'] a[href*='page=stock-relay']"),
        "a link to the settings in the plugin's row",
    )
    assert "Settings" in [link.text for link in links]


def test_without_woocommerce_every_admin_screen_says_so(admin: Admin) -> None:
    """WordPress before 6.5 ignores Requires Plugins: the plugin itself must say that WooCommerce is missing."""
    admin.wordpress.state("woocommerce", "off")
    try:
        admin.open("/wp-admin/index.php")
        assert admin.notice_kind("needs WooCommerce") == "error"
    finally:
        admin.wordpress.state("woocommerce", "on")
    admin.open("/wp-admin/index.php")
    assert "needs WooCommerce" not in admin.text()
