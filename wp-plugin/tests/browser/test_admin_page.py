"""WooCommerce › Stock Relay in a real browser, as a shop owner uses it: settings kept or refused, the relay's status,
Test connection and every action button, against the real relay. Each test is also checked for JavaScript console
errors and PHP notices (conftest.py).

The assertions hold for what the page must do, not how it is built: the status may be rendered with the page or
loaded afterwards by JavaScript (the tests wait on the DOM either way), and a button that asks for confirmation is
answered yes.
"""

from __future__ import annotations

import re

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
    admin.wait(lambda: channel_names(admin) == {"sandbox", "warehouse"}, "the relay's status with the saved settings")
    assert admin.driver.find_element(By.ID, "stock_relay_url").get_attribute("value") == relay.url
    assert admin.driver.find_element(By.ID, "stock_relay_site").get_attribute("value") == SITE
    assert admin.driver.find_element(By.ID, "stock_relay_secret").get_attribute("value") == "", "the secret is shown"
    assert_saved(admin, relay.url)


def test_a_bad_url_or_secret_is_refused_with_an_error_and_the_saved_ones_are_kept(admin: Admin, relay: Relay) -> None:
    admin.open_settings()
    admin.fill("stock_relay_url", "ftp://relay.example.com")
    admin.press("Save settings")
    admin.notice("URL")
    assert admin.wordpress.state("settings")["url"] == relay.url

    admin.open_settings()
    admin.fill("stock_relay_secret", "whsec_c2hvcnQ=")
    admin.press("Save settings")
    admin.notice("secret")
    assert_saved(admin, relay.url)
    admin.open_settings()
    admin.wait(lambda: channel_names(admin) == {"sandbox", "warehouse"}, "the status, signed with the kept secret")


def test_test_connection_shows_the_relays_answer(admin: Admin) -> None:
    admin.open_settings()
    admin.press("Test connection")
    notice = admin.notice("Connected")
    assert "sandbox" in notice.text and "warehouse" in notice.text, notice.text


def test_test_connection_says_when_the_relay_cannot_be_reached(admin: Admin, relay: Relay) -> None:
    closed = relay.url.rsplit(":", 1)[0] + ":9"  # the discard port: nothing listens there
    admin.wordpress.state("configure", closed, SITE, SITE_SECRET)
    admin.open_settings()
    admin.press("Test connection")
    notice = admin.notice("could not be reached")
    assert "Connected" not in notice.text


def test_resend_everything_sends_every_product_to_every_channel(admin: Admin, relay: Relay) -> None:
    ids = {
        sku: admin.wordpress.state("product", sku, str(qty))["id"] for sku, qty in (("RESEND-1", 4), ("RESEND-2", 0))
    }
    assert len(ids) == 2
    admin.open_settings()
    admin.press("Resend everything")
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
    admin.press("Queue refused changes again")
    admin.notice("1 refused change queued again")
    admin.reload_until(PAGE, listed, "the relay refuses it again")
    admin.press("Remove refused changes")
    admin.notice("1 refused change removed")
    admin.open_settings()
    assert not listed()


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
