<?php
/**
 * Wiring: settings access, activation and hooks. Everything with logic lives in its own class.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * The plugin's entry points.
 */
final class Stock_Relay_Plugin {

	/** Hook everything in (plugins_loaded). */
	public static function boot(): void {
		if ( (int) get_option( 'stock_relay_schema', 0 ) < Stock_Relay_Outbox::SCHEMA_VERSION ) {
			Stock_Relay_Outbox::install();
		}
		Stock_Relay_Capture::register();
		// Only Stock_Relay_Kick (small) is loaded on every request; the classes named by ::class load when called.
		add_action( Stock_Relay_Kick::HOOK, array( Stock_Relay_Delivery::class, 'drain' ), 10, 0 );
		add_action( 'wp_ajax_nopriv_' . Stock_Relay_Kick::AJAX_ACTION, array( Stock_Relay_Kick::class, 'handle_kick' ) );
		add_action( 'wp_ajax_' . Stock_Relay_Kick::AJAX_ACTION, array( Stock_Relay_Kick::class, 'handle_kick' ) );
		add_action( 'shutdown', array( Stock_Relay_Kick::class, 'maybe_kick_due' ), 1000 );
		add_filter( 'cron_schedules', array( Stock_Relay_Delivery::class, 'cron_schedules' ) ); // phpcs:ignore WordPress.WP.CronInterval.CronSchedulesInterval, WordPress.WP.CronInterval.ChangeDetected -- one minute on purpose: it only reads an autoloaded option unless something is due.
		add_action( Stock_Relay_Kick::WATCHDOG, array( Stock_Relay_Delivery::class, 'watchdog' ), 10, 0 );
		if ( ! wp_next_scheduled( Stock_Relay_Kick::WATCHDOG ) ) {
			wp_schedule_event( time() + 60, 'stock_relay_minute', Stock_Relay_Kick::WATCHDOG );
		}
		add_action( 'stock_relay_resend_chunk', array( Stock_Relay_Resend::class, 'run_chunk' ), 10, 0 ); // Stock_Relay_Resend::HOOK, spelled out: the class loads only when a resend runs.
		add_action( 'rest_api_init', array( Stock_Relay_Snapshot_Route::class, 'register' ) ); // The relay's signed snapshot route (docs/wire-protocol.md §3).
		add_action( 'rest_api_init', array( Stock_Relay_Wake_Route::class, 'register' ) ); // The relay's signed wake call: drain now.
		add_action( 'rest_api_init', array( Stock_Relay_Adjust_Route::class, 'register' ) ); // The relay's signed stock.adjust: marketplace sales, once per key.
		add_action( 'rest_api_init', array( Stock_Relay_Status_Route::class, 'register' ) ); // The Stock Relay page's status and Test connection (cookie + nonce, manage_woocommerce).
		add_action( 'rest_api_init', array( Stock_Relay_Console_Route::class, 'register' ) ); // Per product, lineage and dead letters for the console's screens (cookie + nonce).
		Stock_Relay_Watch_Hooks::register(); // Pause and resume; alerts, Site Health, the e-mail digest, the WooCommerce log.
		if ( is_admin() ) {
			Stock_Relay_Admin::register();
			Stock_Relay_Product_Screen::register(); // The Products list's Sync column, the product box, Sync this product now.
			Stock_Relay_Dead_Letters_Page::register();
			Stock_Relay_Lineage_Page::register();
			add_filter( 'site_status_tests', array( Stock_Relay_Health::class, 'tests' ) ); // Does anything retry when nobody visits?
		}
	}

	/** Activation: create the tables; the secret's option exists from the start as not autoloaded. */
	public static function activate(): void {
		Stock_Relay_Outbox::install();
		add_option( 'stock_relay_secret', '', '', false );
		add_option( Stock_Relay_Delivery::STATE, array(), '', false );
	}

	/** Deactivation: stop scheduled work (the outbox is kept: nothing is lost). */
	public static function deactivate(): void {
		wp_clear_scheduled_hook( Stock_Relay_Delivery::HOOK );
		wp_clear_scheduled_hook( Stock_Relay_Delivery::WATCHDOG );
		wp_clear_scheduled_hook( Stock_Relay_Resend::HOOK );
		if ( function_exists( 'as_unschedule_all_actions' ) ) {
			as_unschedule_all_actions( Stock_Relay_Delivery::HOOK );
			as_unschedule_all_actions( Stock_Relay_Resend::HOOK );
		}
	}

	/**
	 * The settings, with the secret from wp-config.php when STOCK_RELAY_SECRET is defined.
	 *
	 * @return array{url: string, site: string, secret: string, secret_from_constant: bool}
	 */
	public static function settings(): array {
		$constant = defined( 'STOCK_RELAY_SECRET' ) && is_string( STOCK_RELAY_SECRET ) && '' !== STOCK_RELAY_SECRET;
		return array(
			'url'                  => (string) get_option( 'stock_relay_url', '' ),
			'site'                 => (string) get_option( 'stock_relay_site', '' ),
			'secret'               => $constant ? (string) STOCK_RELAY_SECRET : (string) get_option( 'stock_relay_secret', '' ),
			'secret_from_constant' => $constant,
		);
	}
}
